"""Helpers shared by several test files, imported as ``helpers.NAME`` (``tests/conftest.py`` puts
this folder's parent on ``sys.path``; verl's wheel owns the top-level ``tests`` name, so test
files are never imported from one another)."""

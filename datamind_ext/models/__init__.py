"""Models the project builds itself (never downloaded): the tiny test/quickstart model."""

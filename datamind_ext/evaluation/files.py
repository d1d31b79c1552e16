"""Reading benchmark files with one-line errors that name the file and what is wrong.

Benchmarks are downloaded by hand and unpacked in many ways; a KeyError three frames deep
does not tell a user that they pointed ``--data`` at the wrong folder. Every loader reads
through these helpers so the message always names the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datamind_ext.atomic_files import read_jsonl_rows as read_jsonl  # noqa: F401 - the benchmarks' reader
from datamind_ext.errors import UserError


def find_file(data_dir: Path, candidates: Sequence[str], what: str) -> Path:
    """The first of ``candidates`` (paths relative to ``data_dir``) that exists, or a UserError."""
    if not data_dir.is_dir():
        raise UserError(f"benchmark folder not found: {data_dir}")
    for rel in candidates:
        path = data_dir / rel
        if path.is_file():
            return path
    tried = ", ".join(candidates)
    raise UserError(f"{what} not found in {data_dir} (looked for: {tried}); see the benchmark's eval/*/README.md")


def find_dir(data_dir: Path, candidates: Sequence[str], what: str) -> Path:
    """The first of ``candidates`` (folders relative to ``data_dir``) that exists, or a UserError."""
    for rel in candidates:
        path = data_dir / rel
        if path.is_dir():
            return path
    tried = ", ".join(candidates)
    raise UserError(f"{what} not found in {data_dir} (looked for: {tried}); see the benchmark's eval/*/README.md")


def read_json(path: Path) -> Any:
    """A whole JSON file; malformed JSON names the file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read: {err}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON at line {err.lineno} column {err.colno}: {err.msg}") from None




def require_keys(obj: Any, keys: Sequence[str], where: str) -> None:
    """Every key in ``keys`` must be present in the object; the message names the missing ones."""
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise UserError(f"{where}: missing field(s) {', '.join(repr(k) for k in missing)}")


def check_files_exist(paths: Sequence[Path], where: str) -> None:
    """Data files the agent needs must be present; names the first few that are not."""
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise UserError(f"{where}: data file(s) not found: {', '.join(missing[:3])}{more}")

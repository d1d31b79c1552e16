"""Files written whole or not at all, and JSONL read and written one way, for every stage.

A kill (or a second writer on a shared filesystem) never leaves a half-written output: each
write goes to a temporary name unique to the host, process and thread, then is renamed over the
target, which readers see as one step. Resumable stages rely on it (an output that exists is
complete).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel

from datamind_ext.errors import UserError


def temporary_path(path: Path) -> Path:
    """A sibling name no other host, process or thread writing ``path`` uses."""
    return path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{threading.get_ident()}.tmp")


@contextmanager
def atomic_open(path: str | Path, newline: str | None = None) -> Iterator[IO[str]]:
    """``with atomic_open(p) as f: ...``: ``p`` appears complete when the block ends, never otherwise."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(target)
    try:
        with open(tmp, "w", encoding="utf-8", newline=newline) as f:
            yield f
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Indented UTF-8 JSON (values json cannot encode are written as their ``str``)."""
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[BaseModel | dict[str, Any]]) -> int:
    """One JSON object per line (pydantic models dumped), atomically; returns the number of rows."""
    n = 0
    with atomic_open(path) as f:
        for r in rows:
            f.write(json.dumps(r.model_dump() if isinstance(r, BaseModel) else r, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSONL file, blank lines skipped."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def read_jsonl_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a user's file; a bad line is a
    :class:`UserError` naming it (for trusted files, :func:`read_jsonl`)."""
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read: {err}") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{lineno}: not valid JSON: {err.msg}") from None
        if not isinstance(obj, dict):
            raise UserError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        rows.append((lineno, obj))
    return rows

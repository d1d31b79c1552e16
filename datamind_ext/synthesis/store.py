"""Append-as-completed JSONL stores keyed by content: what makes every stage resumable.

Each stage writes one JSON object per line with a ``key`` field (a content hash of the work
item) the moment the item completes, flushed to the kernel at once (so a ``kill -9`` of the
process loses nothing written) and fsynced at most every ``fsync_interval_s`` and on close (so
a machine crash loses at most that much; an fsync per line cost 4 ms, more than a task). On restart the stage reads the keys
already present and skips them, so ``kill -9`` at any point loses at most the items in flight
and never duplicates one. A line cut short by a kill is detected (it does not end in a newline
or does not parse) and removed before new lines are appended.

A store holds one record type (:mod:`datamind_ext.synthesis.records`): lines are validated as
they are read, so a record with an unknown key or a bad value is refused naming the file, the
line and the field, never read as a missing key downstream.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from datamind_ext.config import parse_config


def content_key(*parts: Any) -> str:
    """A stable 16-hex-digit hash of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


class StoredRecord(BaseModel):
    """What every stored record has: its content key. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(description="content hash of the work item: unique within its store")


R = TypeVar("R", bound=StoredRecord)


def read_records(path: str | Path, model: type[R]) -> Iterator[R]:
    """The ``model`` records of a stage file in file order (none if it does not exist). A line that
    is not JSON (torn by a kill) is skipped; one that is JSON but not a valid record raises
    :class:`~datamind_ext.errors.UserError` naming the file, the line and the field."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    data = json.loads(line)
                except ValueError:
                    continue
                yield parse_config(model, data, f"{path} line {n} ({model.__name__})")


class JsonlStore(Generic[R]):
    """One append-only JSONL file of ``model`` records, unique by ``key``."""

    def __init__(self, path: str | Path, model: type[R], fsync_interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.model = model
        self.fsync_interval_s = fsync_interval_s
        self._last_sync = 0.0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._keys: set[str] = {r.key for r in self.records()}
        self._fh = None

    def _repair_tail(self) -> None:
        """Drop a trailing partial line left by a killed writer."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            cut = len(data)
            if not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
            # a complete-looking last line that does not parse is also dropped
            start = data.rfind(b"\n", 0, max(cut - 1, 0)) + 1
            if cut > start:
                try:
                    json.loads(data[start:cut])
                except ValueError:
                    cut = start
            if cut != len(data):
                f.truncate(cut)

    def records(self) -> Iterator[R]:
        return read_records(self.path, self.model)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def keys(self) -> set[str]:
        return set(self._keys)

    def append(self, record: R) -> bool:
        """Write ``record`` durably; False if its key is already stored."""
        key = record.key
        if key in self._keys:
            return False
        if self._fh is None:
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 — kept open across appends, closed in close()
        # python-mode dump + json.dumps: the line format of every earlier store (NaN stays NaN)
        self._fh.write(json.dumps(record.model_dump(), ensure_ascii=False, default=str) + "\n")
        self._fh.flush()
        now = time.monotonic()
        if now - self._last_sync >= self.fsync_interval_s:
            os.fsync(self._fh.fileno())
            self._last_sync = now
        self._keys.add(key)
        return True

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def __enter__(self) -> JsonlStore[R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

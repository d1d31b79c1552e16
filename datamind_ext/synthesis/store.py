"""Append-as-completed JSONL stores keyed by content: what makes every stage resumable.

Each stage writes one JSON object per line with a ``key`` field (a content hash of the work
item) the moment the item completes, flushed to the kernel at once (so a ``kill -9`` of the
process loses nothing written) and fsynced at most every ``fsync_interval_s`` and on close (so
a machine crash loses at most that much; an fsync per line cost 4 ms, more than a task). On restart the stage reads the keys
already present and skips them, so ``kill -9`` at any point loses at most the items in flight
and never duplicates one. A line cut short by a kill is detected (it does not end in a newline
or does not parse) and removed before new lines are appended.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def content_key(*parts: Any) -> str:
    """A stable 16-hex-digit hash of JSON-serialisable parts."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


class JsonlStore:
    """One append-only JSONL file whose records are unique by ``key``."""

    def __init__(self, path: str | Path, fsync_interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.fsync_interval_s = fsync_interval_s
        self._last_sync = 0.0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._keys: set[str] = {r["key"] for r in self.records()}
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

    def records(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def keys(self) -> set[str]:
        return set(self._keys)

    def append(self, record: dict[str, Any]) -> bool:
        """Write ``record`` (must hold ``key``) durably; False if that key is already stored."""
        key = record["key"]
        if key in self._keys:
            return False
        if self._fh is None:
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 — kept open across appends, closed in close()
        self._fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
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

    def __enter__(self) -> JsonlStore:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""One writer per output folder: an advisory lock on ``OUT/.lock`` held while a command runs.

Two runs appending to the same stage files would interleave and double every store (each skips
only the keys present when it started). The lock is an ``flock``, so the kernel releases it when
the holder dies, even by ``kill -9``: a resumed run never finds a stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from datamind_ext.errors import UserError

LOCK_NAME = ".lock"


@contextlib.contextmanager
def out_lock(out: str | Path) -> Iterator[None]:
    """Hold the folder's lock, or fail at once with a one-line error naming the running process."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 — held for the whole block
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise UserError(f"output folder {folder} is in use by {holder}; wait for it to finish or pick another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"process {os.getpid()} ({' '.join(['datamind-ext', *sys.argv[1:]])[:200]})")
        fh.flush()
        yield
    finally:
        fh.close()  # closing the descriptor releases the flock

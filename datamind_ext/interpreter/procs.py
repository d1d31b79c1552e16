"""Finding every process a pool is responsible for, to prove none is leaked."""

from __future__ import annotations

import os
from collections.abc import Collection


def _stat(pid: str) -> tuple[str, int, int] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2])  # state, ppid, pgrp


def find_processes(*, uids: range, pgids: Collection[int], roots: Collection[int]) -> list[int]:
    """Live (non-zombie) processes owned by one of ``uids``, in one of the process groups
    ``pgids``, or descending from one of ``roots`` (roots included)."""
    table: dict[int, tuple[int, int, int]] = {}  # pid -> (ppid, pgrp, euid)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _stat(entry)
        if st is None or st[0] in ("Z", "X"):
            continue
        try:
            euid = os.stat(f"/proc/{entry}").st_uid
        except OSError:
            continue
        table[int(entry)] = (st[1], st[2], euid)
    roots = set(roots)
    found = set()
    for pid, (ppid, pgrp, euid) in table.items():
        if euid in uids or pgrp in pgids or pid in roots:
            found.add(pid)
            continue
        seen = 0
        while ppid > 1 and seen < 64:
            if ppid in roots:
                found.add(pid)
                break
            ppid = table.get(ppid, (0, 0, 0))[0]
            seen += 1
    return sorted(found)

"""Everything the interpreter reads from ``/proc``, in one place: a process's state, parent and
group, its memory, and every process a pool is responsible for (to prove none is leaked).

Stdlib only: used by the pool, the zygote and inside sessions.
"""

from __future__ import annotations

import os
from collections.abc import Collection


def stat(pid: int | str) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of a process, or None if it is gone. The command name may hold any
    byte, spaces and parentheses included, so fields are read after its last ')'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        fields = data[data.rindex(b")") + 2 :].split()
        return fields[0].decode("ascii", "replace"), int(fields[1]), int(fields[2])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int) -> bool:
    """Running or sleeping (not gone, not a zombie waiting to be reaped)."""
    st = stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def pids() -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def uss_bytes(pid: int) -> int | None:
    """Unique set size: the pages only this process holds (what killing it would free)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            total = 0
            for line in f:
                if line.startswith(("Private_Clean:", "Private_Dirty:", "Private_Hugetlb:")):
                    total += int(line.split()[1]) * 1024
            return total
    except (OSError, ValueError):
        return None


def rss_bytes(pid: int) -> int | None:
    return _status_kib(pid, "VmRSS:")


def vm_size_bytes(pid: int | str = "self") -> int:
    """Virtual address space of a process (VmSize)."""
    return _status_kib(pid, "VmSize:") or 0


def _status_kib(pid: int | str, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def find_processes(*, uids: range, pgids: Collection[int], roots: Collection[int]) -> list[int]:
    """Live (non-zombie) processes owned by one of ``uids``, in one of the process groups
    ``pgids``, or descending from one of ``roots`` (roots included)."""
    table: dict[int, tuple[int, int, int]] = {}  # pid -> (ppid, pgrp, euid)
    for pid in pids():
        st = stat(pid)
        if st is None or st[0] in ("Z", "X"):
            continue
        try:
            euid = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue
        table[pid] = (st[1], st[2], euid)
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

"""Memory of session processes, as the kernel accounts it."""

from __future__ import annotations


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
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None

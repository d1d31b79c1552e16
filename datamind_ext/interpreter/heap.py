"""Fill the holes of the zygote's small-object heap before it forks.

CPython's small-object allocator (pymalloc) serves a request from a partly used pool of its
size class before it opens a fresh one. After the preload and warm-up, the zygote's pools hold
thousands of scattered free blocks; a session's first small objects land in them, one here,
one there, and each copies a whole shared page (4 KiB) to hold a few dozen bytes. Taking
those blocks in the zygote first, with objects kept for its lifetime (well under 1 MiB, shared
by every session), makes a session's objects fill fresh pools densely instead: about 0.5 MiB
less unique memory per session after the benchmark's five cells.

glibc's malloc (objects over 512 bytes, numpy's small buffers, C extensions) has the same
kind of holes: about 1,300 free chunks of 32-512 bytes scattered through the zygote's heap.
:func:`fill_malloc_holes` takes each free chunk of an exact-size bin up to 4 KiB (larger free
chunks span whole pages, which a session fills densely anyway): another ~0.6 MiB per session.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import tempfile
from typing import Any

_ROW = re.compile(r"^\s*\d+\s+(\d+)\s+\d+\s+\d+\s+(\d+)\s*$", re.M)  # class, size, pools, in use, avail


def free_blocks_by_size() -> dict[int, int]:
    """{block size: free blocks in partly used pools}, from ``sys._debugmallocstats`` (CPython
    writes it to the C-level stderr); empty where that is not available."""
    stats = getattr(sys, "_debugmallocstats", None)
    if stats is None:
        return {}
    with tempfile.TemporaryFile() as f:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(f.fileno(), 2)
            stats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode("ascii", "replace")
    return {int(size): int(avail) for size, avail in _ROW.findall(text)}


def fill_small_object_pools() -> list[list[object]]:
    """Allocate one object per free block of every partly used pool; keep the result alive."""
    held: list[list[object]] = []
    for size, n in free_blocks_by_size().items():
        if n <= 0:
            continue
        if size <= 16:
            held.append([object() for _ in range(n)])  # 16 bytes
        elif size <= 32:
            held.append([float(i) + 0.5 for i in range(n)])  # 24 bytes
        else:
            length = size - sys.getsizeof(b"")  # a bytes object of this length fills the block
            held.append([bytes(length) for _ in range(n)] if length > 0 else [])
    return held


_CHUNK = re.compile(r'<size from="(\d+)" to="(\d+)" total="\d+" count="(\d+)"/>')
TCACHE_PER_SIZE = 7  # glibc keeps up to this many freed chunks per size in a per-thread cache first


def malloc_free_chunks() -> list[tuple[int, int]]:
    """[(chunk size, count)] of the main arena's exact-size bins, from glibc's ``malloc_info``
    (XML); empty where it is not glibc."""
    try:
        libc = ctypes.CDLL(None)
        malloc_info, fdopen, fclose = libc.malloc_info, libc.fdopen, libc.fclose
    except (OSError, AttributeError):
        return []
    fdopen.restype, fdopen.argtypes = ctypes.c_void_p, [ctypes.c_int, ctypes.c_char_p]
    malloc_info.argtypes, fclose.argtypes = [ctypes.c_int, ctypes.c_void_p], [ctypes.c_void_p]
    with tempfile.TemporaryFile() as f:
        fp = fdopen(os.dup(f.fileno()), b"w")
        if not fp:
            return []
        malloc_info(0, fp)
        fclose(fp)
        f.seek(0)
        main_arena = f.read().decode("ascii", "replace").split("</heap>")[0]
    return [(int(lo) & ~15, int(n)) for lo, hi, n in _CHUNK.findall(main_arena) if lo == hi]


def fill_malloc_holes(max_chunk_bytes: int = 4096) -> Any:
    """malloc one block per free chunk of each exact size up to ``max_chunk_bytes`` (plus what
    the thread cache may hold); the blocks are never freed. Returns the array holding them."""
    wanted = [(size, n + TCACHE_PER_SIZE) for size, n in malloc_free_chunks() if 32 <= size <= max_chunk_bytes]
    held = (ctypes.c_void_p * sum(n for _, n in wanted))()  # one allocation, made before the fill
    malloc = ctypes.CDLL(None).malloc
    malloc.restype, malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    i = 0
    for size, n in wanted:
        for _ in range(n):
            held[i] = malloc(size - 16)  # a request of size - 16 bytes takes a chunk of exactly size
            i += 1
    return held

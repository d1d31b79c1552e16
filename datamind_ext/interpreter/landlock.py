"""A session's view of the filesystem, enforced by Landlock (Linux >= 5.13, no privileges needed).

The session may read the Python runtime and libraries (and run programs from the system
directories), read and write its working directory and private /tmp, and nothing else: ground
truth next to the data files' originals, the project checkout, other sessions' directories and
the pool's stage cannot be opened by any means (Python, ctypes, subprocess), because the kernel
checks every path lookup of the process and its descendants. Where the kernel's Landlock ABI
allows it, TCP bind/connect are denied too (ABI 4) and signals and abstract Unix sockets are
scoped to the session (ABI 6). Built when a spare is forked, enforced when it becomes a session.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass

_libc = ctypes.CDLL(None, use_errno=True)
_NR_CREATE, _NR_ADD, _NR_RESTRICT = 444, 445, 446  # the same on every architecture (generic table)

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_DIR_WRITE = sum(1 << i for i in range(4, 13))  # remove dir/file, make char/dir/reg/sock/fifo/block/sym
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX, SCOPE_SIGNAL = 1 << 0, 1 << 1

READ = EXECUTE | READ_FILE | READ_DIR


def abi_version() -> int:
    """The kernel's Landlock ABI (0: not available)."""
    v = _libc.syscall(_NR_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(int(v), 0)


def _all_fs(abi: int) -> int:
    rights = READ | WRITE_FILE | _DIR_WRITE
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


@dataclass
class Ruleset:
    """A Landlock ruleset being built: made when a spare session is forked (most of the rules),
    finished and enforced when it is assigned a session (its working directory), so the
    path lookups and syscalls of the read rules stay off the session's start path."""

    fd: int
    abi: int
    handled: int

    def enforce(self, *, write: Iterable[str] = ()) -> str:
        """Add every right on the trees ``write``, then confine this process (and what it
        starts) to the rules; returns what is in force. The ruleset is closed either way."""
        try:
            for path in write:
                _add(self.fd, path, self.handled)
            if _libc.prctl(38, ctypes.c_ulong(1), 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS, required
                raise OSError(ctypes.get_errno(), "no_new_privs")
            if _libc.syscall(_NR_RESTRICT, self.fd, ctypes.c_uint32(0)) != 0:
                raise OSError(ctypes.get_errno(), f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}")
        finally:
            os.close(self.fd)
        extra = []
        if self.abi >= 4:
            extra.append("TCP bind/connect denied")
        if self.abi >= 6:
            extra.append("signals and abstract Unix sockets scoped to the session")
        return f"Landlock ABI {self.abi}: reads limited to the runtime, writes to the working directory and private /tmp" + (
            f"; {', '.join(extra)}" if extra else ""
        )


def ruleset(*, read: Iterable[str], write: Iterable[str], devices: Iterable[str]) -> Ruleset:
    """A ruleset that, once enforced, allows only the given paths.

    ``read``: readable and executable trees; ``write``: trees with every right; ``devices``:
    files such as /dev/null, readable and writable. Paths that do not exist are skipped.
    Raises OSError when Landlock is unavailable or a step fails (the caller reports it).
    """
    abi = abi_version()
    if abi < 1:
        raise OSError("Landlock is not available in this kernel")
    handled = _all_fs(abi)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("=QQQ", handled, net, scoped)[: 8 if abi < 4 else 16 if abi < 6 else 24]
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = _libc.syscall(_NR_CREATE, buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if fd < 0:
        raise OSError(ctypes.get_errno(), f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    try:
        for paths, rights in ((read, READ), (write, handled), (devices, READ_FILE | WRITE_FILE | TRUNCATE | IOCTL_DEV)):
            for path in paths:
                _add(fd, path, rights & handled)
    except BaseException:
        os.close(fd)
        raise
    return Ruleset(fd=fd, abi=abi, handled=handled)


def _add(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if not os.path.isdir(path):
            rights &= _FILE_RIGHTS
        attr = struct.pack("=Qi", rights, fd)
        buf = ctypes.create_string_buffer(attr, len(attr))
        if _libc.syscall(_NR_ADD, ruleset, 1, buf, ctypes.c_uint32(0)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"landlock_add_rule {path}: {os.strerror(err)}")
    finally:
        os.close(fd)

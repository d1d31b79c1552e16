"""Per-session memory cgroups: every byte a session holds counts toward its limit.

``RLIMIT_AS`` bounds address space only, so memory a session holds outside its mappings —
written memfds, files in tmpfs (/tmp, /dev/shm), page cache of what it reads — escaped it. A
memory cgroup charges all of them to the process that touched the pages; one is created per
session process right after the fork (pages shared with the warm zygote stay charged to the
zygote), its limit is ``memory_mib``, and the kernel's OOM killer ends the session when it is
exceeded. cgroup v1 (the memory hierarchy) and v2 (a delegated subtree with the memory
controller) are both handled; where neither is writable (no root) this layer is off and says so.
"""

from __future__ import annotations

import os
import time

_V1 = "/sys/fs/cgroup/memory"
_V2 = "/sys/fs/cgroup"


def _own_path() -> tuple[str, str] | None:
    """(version, directory of this process's memory cgroup)."""
    try:
        with open("/proc/self/cgroup", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        if "memory" in controllers.split(",") and os.path.isdir(_V1):
            return "v1", _V1 + rel
    for line in lines:
        if line.startswith("0::"):
            base = _V2 + line[3:]
            try:
                with open(os.path.join(_V2, "cgroup.controllers"), encoding="ascii") as f:
                    if "memory" in f.read().split():
                        return "v2", base
            except OSError:
                pass
    return None


def _pool_group_path(base: str, zygote_pid: int) -> str:
    return os.path.join(base, f"datamind-interp-{zygote_pid}")


def create_pool_group() -> tuple[str, str]:
    """Create the pool's cgroup (in the zygote, as root); raises OSError with the reason if impossible."""
    own = _own_path()
    if own is None:
        raise OSError("no memory cgroup controller is mounted")
    version, base = own
    path = _pool_group_path(base, os.getpid())
    os.mkdir(path, 0o755)
    if version == "v2":
        try:
            _write(os.path.join(path, "cgroup.subtree_control"), "+memory")
        except OSError:
            os.rmdir(path)
            raise
    return version, path


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def session_dir(group: str, pid: int) -> str:
    return os.path.join(group, f"s{pid}")


def join(version: str, group: str, pid: int, limit_bytes: int) -> None:
    """Put the calling (freshly forked, still privileged) process in its own cgroup with a limit;
    ``pid`` is ours as the zygote knows it (it names the cgroup; inside our own pid namespace
    ``os.getpid()`` is 1)."""
    d = session_dir(group, pid)
    os.mkdir(d, 0o755)
    if version == "v1":
        _write(os.path.join(d, "memory.limit_in_bytes"), str(limit_bytes))
        if os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes")):
            _write(os.path.join(d, "memory.memsw.limit_in_bytes"), str(limit_bytes))
    else:
        _write(os.path.join(d, "memory.max"), str(limit_bytes))
        _write(os.path.join(d, "memory.swap.max"), "0")
    _write(os.path.join(d, "cgroup.procs"), "0")  # 0: the writing process itself


def usage_bytes(version: str, group: str, pid: int) -> int | None:
    name = "memory.usage_in_bytes" if version == "v1" else "memory.current"
    try:
        with open(os.path.join(session_dir(group, pid), name), encoding="ascii") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def oom_killed(version: str, group: str, pid: int) -> bool:
    name = "memory.oom_control" if version == "v1" else "memory.events"
    try:
        with open(os.path.join(session_dir(group, pid), name), encoding="ascii") as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value) > 0
    except (OSError, ValueError):
        pass
    return False


def remove(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


def remove_pool_group(zygote_pid: int, timeout_s: float = 5.0) -> None:
    """Remove a dead zygote's group and its sessions' (from the janitor: sessions killed by their
    parent-death signal may take a moment to leave their groups)."""
    own = _own_path()
    if own is None:
        return
    path = _pool_group_path(own[1], zygote_pid)
    deadline = time.monotonic() + timeout_s
    while os.path.isdir(path) and time.monotonic() < deadline:
        try:
            for name in os.listdir(path):
                if name.startswith("s") and os.path.isdir(os.path.join(path, name)):
                    remove(os.path.join(path, name))
        except OSError:
            pass
        remove(path)
        if os.path.isdir(path):
            time.sleep(0.05)

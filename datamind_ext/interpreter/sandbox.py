"""Isolation primitives applied to a session process right after it is forked.

Each function does one thing and returns a short description of what is in force (or why
not), so :func:`isolation_report` and ``datamind-ext doctor`` print what is really applied,
never what was hoped for. Stdlib and ctypes only: this module runs in the zygote and in probes.
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import socket
import sys
from collections.abc import Iterable

from datamind_ext.interpreter import procs

_libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36

# Variables a session keeps from a scrubbed environment; everything else (API keys, tokens,
# cloud credentials, proxies) is dropped.
SAFE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "MPLBACKEND": "Agg",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_MAX_THREADS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
}


def _prctl(option: int, arg: int) -> int:
    if _libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        return ctypes.get_errno()
    return 0


def unshare_network() -> str | None:
    """Move the calling process into a new, empty network namespace; None on success, else why not."""
    if _libc.unshare(CLONE_NEWNET) != 0:
        return os.strerror(ctypes.get_errno())
    return None


# --- a pid namespace per session ----------------------------------------------------------------
CLONE_NEWPID = 0x20000000


def pid_namespace_switch() -> tuple[int | None, str | None]:
    """The fd of the caller's own pid namespace if it can give each child a fresh one (root:
    ``unshare(CLONE_NEWPID)`` before a fork, ``setns`` back after it), else (None, why not).

    Probed once by the zygote: unshare only changes where the *next* child goes, and setns to
    the caller's own namespace puts that back, so nothing is left changed by the probe."""
    try:
        fd = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        return None, f"no /proc/self/ns/pid: {exc.strerror}"
    if _libc.unshare(CLONE_NEWPID) != 0:
        err = ctypes.get_errno()
        os.close(fd)
        return None, f"unshare(CLONE_NEWPID) failed: {os.strerror(err)}"
    if _libc.setns(fd, CLONE_NEWPID) != 0:
        raise OSError(ctypes.get_errno(), "setns back to the zygote's own pid namespace failed")
    return fd, None


def fork_into_new_pid_namespace(own_ns_fd: int) -> int:
    """``os.fork()`` whose child is pid 1 of a pid namespace of its own: it sees (and can signal)
    only its own descendants, and when it exits the kernel kills every process left in it."""
    if _libc.unshare(CLONE_NEWPID) != 0:
        raise OSError(ctypes.get_errno(), f"unshare(CLONE_NEWPID) failed: {os.strerror(ctypes.get_errno())}")
    try:
        pid = os.fork()
    except BaseException:
        _libc.setns(own_ns_fd, CLONE_NEWPID)
        raise
    if pid != 0 and _libc.setns(own_ns_fd, CLONE_NEWPID) != 0:  # later forks (helpers) stay in ours
        raise OSError(ctypes.get_errno(), "setns back to the zygote's own pid namespace failed")
    return pid


def outer_pid() -> int:
    """Our pid as the zygote sees it (``os.getpid()`` is 1 inside a new pid namespace); read
    from the /proc mounted for the zygote's namespace, so before :func:`mount_own_proc`."""
    return int(os.readlink("/proc/self"))


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` when our parent dies (cleared by a uid change: call it after)."""
    return _prctl(PR_SET_PDEATHSIG, int(sig)) == 0


def set_child_subreaper() -> bool:
    """Orphaned descendants are re-parented to us, so we can kill what a session left behind."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1) == 0


def set_no_new_privs() -> bool:
    """setuid binaries (sudo, ping) cannot raise a session's privileges."""
    return _prctl(PR_SET_NO_NEW_PRIVS, 1) == 0


def can_switch_uid() -> bool:
    """Root with CAP_SETUID in a user namespace that maps high uids: sessions get their own uid."""
    return os.geteuid() == 0


def drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def _set(which: int, soft: int, hard: int | None = None) -> None:
    cur_soft, cur_hard = resource.getrlimit(which)
    hard = soft if hard is None else hard
    if cur_hard != resource.RLIM_INFINITY and os.geteuid() != 0:
        hard = min(hard, cur_hard)
        soft = min(soft, hard)
    resource.setrlimit(which, (soft, hard))


def apply_rlimits(
    *, memory_bytes: int, max_processes: int | None, max_file_bytes: int, max_open_files: int, cpu_s: int
) -> dict[str, str]:
    """Set the session's resource limits; returns what was set, for the isolation report."""
    image = procs.vm_size_bytes()
    _set(resource.RLIMIT_AS, image + memory_bytes)
    _set(resource.RLIMIT_FSIZE, max_file_bytes)
    _set(resource.RLIMIT_NOFILE, max_open_files)
    _set(resource.RLIMIT_CORE, 0)
    _set(resource.RLIMIT_CPU, cpu_s)
    done = {
        "memory": f"RLIMIT_AS = warm image {image >> 20} MiB + {memory_bytes >> 20} MiB",
        "file_size": f"RLIMIT_FSIZE {max_file_bytes >> 20} MiB (SIGXFSZ ignored: writes fail with EFBIG)",
        "cpu": f"RLIMIT_CPU {cpu_s} s per session, soft limit moved per cell (SIGXCPU -> exception)",
    }
    if max_processes is not None:
        _set(resource.RLIMIT_NPROC, max_processes)
        done["processes"] = f"RLIMIT_NPROC {max_processes} processes+threads on the session's own uid"
    return done


def scrubbed_env(workdir: str) -> dict[str, str]:
    env = dict(SAFE_ENV)
    env.update(HOME=workdir, TMPDIR=workdir, TEMP=workdir, TMP=workdir, SQLITE_TMPDIR=workdir, PWD=workdir)
    return env


def _norm(path: object) -> str | None:
    if isinstance(path, int):
        return None
    try:
        p = os.fsdecode(os.fspath(path))  # type: ignore[arg-type]
    except TypeError:
        return None
    return os.path.realpath(p)


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_FS_EVENTS = {
    "os.remove": 0, "os.rename": 0, "os.replace": 0, "os.rmdir": 0, "os.chmod": 0, "os.chown": 0,
    "os.truncate": 0, "os.link": 1, "os.symlink": 1, "os.mkdir": 0, "os.utime": 0, "shutil.rmtree": 0,
}
_FS_SECOND = {"os.rename": 1, "os.replace": 1}
_KILL_EVENTS = {"os.kill", "os.killpg"}
_SPAWN_EVENTS = {"os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "subprocess.Popen", "os.system"}


def _group_size(pgid: int) -> int:
    return sum(1 for pid in procs.pids() if (st := procs.stat(pid)) is not None and st[2] == pgid)


_SOCKET_EVENTS = {"socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo"}


def install_audit_hook(
    *,
    workdir: str,
    protected: Iterable[str],
    pool_root: str,
    guard_signals: bool,
    max_processes: int | None = None,
    private_dirs: Iterable[str] = (),
) -> None:
    """Defence in depth at the Python level (ctypes can bypass it; the kernel-level measures cannot be).

    Blocks: sockets other than AF_UNIX; writes, renames and deletes outside the working
    directory or of the data files; reads inside the pool's tree except the own directory;
    and, when sessions share the parent's uid (no kernel process limit), signals to processes
    outside the own group and process creation beyond ``max_processes`` in the own group.
    """
    workdir = os.path.realpath(workdir)
    pool_root = os.path.realpath(pool_root)
    protected_paths = {os.path.realpath(os.path.join(workdir, p)) for p in protected}
    own_prefix = workdir + os.sep
    pool_prefix = pool_root + os.sep
    own_pgid = os.getpgid(0)
    allowed_writes = {"/dev/null"}
    deny = PermissionError

    private = tuple(os.path.realpath(d) for d in private_dirs)  # the session's own tmpfs (/tmp, /dev/shm)

    def inside(p: str) -> bool:
        if p.startswith(pool_prefix):
            return p == workdir or p.startswith(own_prefix)
        return p == workdir or p.startswith(own_prefix) or any(p == d or p.startswith(d + os.sep) for d in private)

    def check_write(p: str | None, what: str) -> None:
        if p is None or p in allowed_writes:
            return
        if not inside(p):
            raise deny(f"[sandbox] {what} outside the working directory is not allowed: {p}")
        if p in protected_paths:
            raise deny(f"[sandbox] the data file {os.path.basename(p)} is read-only")

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            p = _norm(args[0])
            if p is None:
                return
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            if flags & _WRITE_FLAGS or any(c in mode for c in "wax+"):
                check_write(p, "writing")
            elif p.startswith(pool_prefix) and not inside(p):
                raise deny(f"[sandbox] reading another session's files is not allowed: {p}")
            elif guard_signals and p.startswith("/proc/"):
                # Same uid as the pool: /proc would expose other processes' environment and memory.
                part = p.split("/")[2]
                if part.isdigit() and int(part) != os.getpid():
                    try:
                        foreign = os.getpgid(int(part)) != own_pgid
                    except OSError:
                        foreign = False
                    if foreign:
                        raise deny(f"[sandbox] reading other processes' /proc entries is not allowed: {p}")
            return
        if event in _FS_EVENTS:
            check_write(_norm(args[_FS_EVENTS[event]]), event)
            if event in _FS_SECOND:
                check_write(_norm(args[_FS_SECOND[event]]), event)
            return
        if event in _SOCKET_EVENTS:
            if event == "socket.__new__":
                family = args[1] if len(args) > 1 else None
                if family in (socket.AF_UNIX, -1, None):
                    return
            elif event in ("socket.connect", "socket.bind", "socket.sendto"):
                sock = args[0]
                if getattr(sock, "family", None) == socket.AF_UNIX:
                    return
            raise deny("[sandbox] network access is disabled in this interpreter")
        if max_processes is not None and event in _SPAWN_EVENTS:
            if _group_size(own_pgid) >= max_processes:
                raise BlockingIOError(11, f"[sandbox] process limit reached ({max_processes} per session)")
            return
        if guard_signals and event in _KILL_EVENTS:
            pid = args[0]
            if event == "os.killpg":
                target = pid
            elif pid == 0 or pid == os.getpid():
                target = own_pgid
            elif pid == -1:
                target = -1
            elif pid < -1:
                target = -pid
            else:
                try:
                    target = os.getpgid(pid)
                except OSError:
                    return
            if target != own_pgid:
                raise deny("[sandbox] signalling processes outside this session is not allowed")

    sys.addaudithook(hook)


# --- making the Python installation reachable by unprivileged session uids ---------------------
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE, MS_SLAVE, MS_SHARED = 32, 4096, 8192, 16384, 1 << 18, 1 << 19, 1 << 20
MNT_DETACH = 2


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
    if _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def blocked_dirs(paths: Iterable[str]) -> dict[str, set[str]]:
    """Directories on the way to ``paths`` that other users cannot traverse or list,
    each with the names of its children that lie on those paths."""
    out: dict[str, set[str]] = {}
    for p in paths:
        p = os.path.realpath(p)
        if not os.path.exists(p):
            continue
        parts = p.strip("/").split("/")
        for i in range(len(parts)):
            d = "/" + "/".join(parts[:i])
            need = 0o001 if i < len(parts) else 0o005
            try:
                if os.stat(d).st_mode & need != need:
                    out.setdefault(d, set()).add(parts[i])
            except OSError:
                break
        try:
            st = os.stat(p)
            import stat as _stat

            if _stat.S_ISDIR(st.st_mode) and st.st_mode & 0o005 != 0o005:
                out.setdefault(p, set())
        except OSError:
            pass
    return out


def expose_paths(paths: Iterable[str], scratch: str) -> str | None:
    """In a private mount namespace, cover each non-traversable directory on ``paths`` (e.g.
    ``/root`` holding a pyenv Python) with a tmpfs and bind back only the children on the
    paths, so session uids can import the standard library and site-packages while the rest
    of that directory stays hidden. Host mounts are untouched. Returns None, or why not."""
    paths = list(paths)
    blocked = blocked_dirs(paths)
    if not blocked:
        return None
    if _libc.unshare(CLONE_NEWNS) != 0:
        return f"unshare(CLONE_NEWNS) failed: {os.strerror(ctypes.get_errno())}"
    try:
        _mount(None, "/", None, MS_REC | MS_SLAVE)  # slave: the pool's later workdir mounts still arrive
        n = 0
        for d in sorted(blocked, key=lambda x: x.count("/")):
            children = sorted(blocked_dirs(paths).get(d, set()))
            if not children and d not in blocked_dirs(paths):
                continue
            staged = []
            for name in children:
                src = os.path.join(d, name)
                tmp = os.path.join(scratch, f"expose-{n}")
                n += 1
                if os.path.isdir(src):
                    os.mkdir(tmp, 0o700)
                else:
                    open(tmp, "wb").close()
                _mount(src, tmp, None, MS_BIND | MS_REC)
                staged.append((name, tmp, os.path.isdir(src)))
            _mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
            for name, tmp, is_dir in staged:
                dest = os.path.join(d, name)
                if is_dir:
                    os.mkdir(dest, 0o755)
                else:
                    open(dest, "wb").close()
                _mount(tmp, dest, None, MS_MOVE)
                os.rmdir(tmp) if is_dir else os.unlink(tmp)
    except OSError as exc:
        return str(exc)
    left = blocked_dirs(paths)
    return None if not left else f"still not traversable: {sorted(left)}"


# --- a session's private /tmp and /dev/shm, and what its filesystem view may read -------------
def private_tmp(size_mib: int, keep: str, runtime: Iterable[str] = ()) -> str:
    """In a new mount namespace, give this process a fresh tmpfs of ``size_mib`` on /tmp, also
    seen as /dev/shm: files a session (or C code in it: sqlite, pyarrow, mkfifo, a Unix socket)
    writes there count toward its memory and this size and vanish with it. Runtime paths that
    lie under /tmp (a checkout there on ``PYTHONPATH``) are bound back read-only. Refuses (after
    the mount) when ``keep``, the pool's root, lies under /tmp: the writable /tmp would hold it."""
    if _libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), f"unshare(CLONE_NEWNS) failed: {os.strerror(ctypes.get_errno())}")
    _mount(None, "/", None, MS_REC | MS_SLAVE)  # nothing flows back; the pool's workdir mounts flow in
    under_tmp = sorted(p for p in {keep, *runtime} if p.startswith("/tmp/") and os.path.exists(p))
    held = [(p, os.open(p, os.O_PATH | os.O_CLOEXEC)) for p in under_tmp]
    try:
        _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={size_mib}m,mode=1777")
        for path, fd in held:
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.makedirs(path, mode=0o755, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o444))
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
            if path != os.path.realpath(keep):
                _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        if os.path.isdir("/dev/shm"):
            _mount("/tmp", "/dev/shm", None, MS_BIND)
    finally:
        for _, fd in held:
            os.close(fd)
    if os.path.realpath(keep).startswith("/tmp/"):
        raise OSError(f"the pool's root {keep} lies under /tmp")
    return f"private tmpfs of {size_mib} MiB on /tmp and /dev/shm (counted in the memory limit), gone with the session"


def mount_own_proc() -> str:
    """In the session's own mount namespace, a fresh /proc of its own pid namespace: other
    processes' entries (the pool's command line, environment, open files) do not exist for it."""
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    return "own pid namespace: the session is pid 1, /proc lists just its own processes, none outlive it"


SYSTEM_READ_PATHS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/proc", "/sys/devices/system/cpu")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


def runtime_read_paths() -> list[str]:
    """What a session may read: system directories, the Python installation, and, from any other
    ``sys.path`` entry (a source checkout, ``PYTHONPATH``), only the packages actually imported
    from it, so the rest of a checkout (tests, data, answers) stays out of reach. Each path is
    listed as Python names it and resolved (a symlinked virtualenv), for :func:`private_tmp`."""
    raw_prefixes = {p for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable)) if p}
    prefixes = {os.path.realpath(p) for p in raw_prefixes}
    paths = set(SYSTEM_READ_PATHS) | prefixes | raw_prefixes

    def under_prefix(p: str) -> bool:
        return any(p == q or p.startswith(q + os.sep) for q in prefixes)

    outside = [e for e in sys.path if e and os.path.isdir(e) and not under_prefix(os.path.realpath(e))]
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if not isinstance(f, str):
            continue
        for e in outside:
            for base, file in ((e, f), (os.path.realpath(e), os.path.realpath(f))):
                if file.startswith(base + os.sep):
                    top = os.path.join(base, file[len(base) + 1 :].split(os.sep)[0])
                    paths.update((top, os.path.realpath(top)))
    return sorted(paths)


# --- per-session working directories with a disk quota (done by the pool, in its namespace) -----
def share_mounts_under(path: str) -> None:
    """Make ``path`` a shared mount point, so tmpfs the pool mounts below it later also appear
    in the zygote's and the sessions' mount namespaces (which hold it as a slave)."""
    _mount(path, path, None, MS_BIND)
    _mount(None, path, None, MS_SHARED)


def mount_workdir(workdir: str, size_mib: int, uid: int | None, files: Iterable[tuple[str, str]]) -> None:
    """A tmpfs of ``size_mib`` as the session's directory (its disk quota; RAM, so also charged
    to the memory cgroup of the session that writes), with each data file bound in read-only."""
    opts = f"size={size_mib}m,mode=1770,uid=0,gid={uid}" if uid is not None else f"size={size_mib}m,mode=700"
    _mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV, opts)
    for staged, name in files:
        dest = os.path.join(workdir, name)
        os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o444))
        bind_readonly(staged, dest)


def bind_readonly(src: str, dest: str) -> None:
    """Bind ``src`` on ``dest`` read-only. Binding from a read-only bind (see the pool's stage)
    matters: copies that propagate to other namespaces keep the flags the mount had when it was
    made, and a later remount does not reach them."""
    _mount(src, dest, None, MS_BIND)
    _mount(None, dest, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def unmount_tree(path: str) -> None:
    """Detach every mount at or below ``path`` (deepest first), ignoring those already gone."""
    prefix = os.path.realpath(path)
    points = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                point = line.split()[4].replace("\\040", " ")
                if point == prefix or point.startswith(prefix + os.sep):
                    points.append(point)
    except OSError:
        return
    for point in sorted(points, key=len, reverse=True):
        _libc.umount2(os.fsencode(point), MNT_DETACH)


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Unmount what the pool mounted below ``path`` (quota tmpfs, bound data files), then delete it."""
    unmount_tree(os.fspath(path))
    shutil.rmtree(path, ignore_errors=True)

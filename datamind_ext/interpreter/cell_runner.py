"""The session process: set up the sandbox once, then run cells in persistent globals.

This code runs in a child forked from the warm zygote, so everything the zygote imported is
already there (copy-on-write) and a session costs a fork, not an interpreter start-up. It
talks to the pool over one Unix socket, one :mod:`wire` frame per request and per reply, each a
record of :mod:`messages`.
"""

from __future__ import annotations

import builtins
import ctypes
import gc
import linecache
import os
import resource
import select
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from typing import Any, NoReturn

from datamind_ext.interpreter import (
    capture,
    landlock,
    memcg,
    messages,
    procs,
    sandbox,
    seccomp,
    sqltools,
    wire,
)
from datamind_ext.interpreter import guard as guard_module
from datamind_ext.interpreter.guard import Guard
from datamind_ext.interpreter.messages import (
    Assign,
    CellReply,
    RunCell,
    SessionReady,
    SessionSpec,
    SpareReady,
    StartFailed,
)
from datamind_ext.interpreter.sqltools import SqlTools
from datamind_ext.protocol import observation
from datamind_ext.protocol.observation import truncate_middle

ERROR_MAX_LINES = 30
# The memory cgroup's limit sits this far above memory_mib, so an ordinary allocation past the
# limit still fails with a MemoryError (RLIMIT_AS) the model can read, and only memory outside
# the address space (memfd, tmpfs, shm) or copy-on-write of the image reaches the OOM killer.
MEMCG_SLACK_MIB = 64


class CpuTimeExceeded(Exception):
    """Raised in a cell when it used up its CPU-time limit."""


class _State:
    in_cell = False
    interrupted = False  # set only by the pool's interrupt, never by a cell raising KeyboardInterrupt


def _on_sigint(signum: int, frame: Any) -> None:
    # The pool interrupts a cell that ran past its wall-clock limit; outside a cell we ignore it
    # so the reply in flight is never cut.
    if _State.in_cell:
        _State.interrupted = True
        raise KeyboardInterrupt


def _on_sigxcpu(signum: int, frame: Any) -> None:
    if _State.in_cell:
        raise CpuTimeExceeded("the cell exceeded its CPU-time limit")


# What the runner installs and restores before each cell (a cell may change any of them).
_HANDLERS: dict[int, Any] = {
    signal.SIGINT: _on_sigint,
    signal.SIGXCPU: _on_sigxcpu,
    signal.SIGXFSZ: signal.SIG_IGN,
    signal.SIGPIPE: signal.SIG_IGN,
    signal.SIGALRM: signal.SIG_DFL,
    signal.SIGVTALRM: signal.SIG_DFL,
    signal.SIGPROF: signal.SIG_DFL,
    signal.SIGCHLD: signal.SIG_DFL,
    signal.SIGTERM: signal.SIG_DFL,
    signal.SIGHUP: signal.SIG_DFL,
    signal.SIGQUIT: signal.SIG_DFL,
}
# Private references, bound before any user code runs (a cell may rebind the builtins).
_compile = compile
_exec = exec
_isinstance = isinstance
_setprofile = sys.setprofile
_settrace = sys.settrace


def _stop_tracing() -> None:
    try:
        _setprofile(None)
    except BaseException:  # noqa: BLE001 - a profile function that raises on our own call
        _setprofile(None)
    _settrace(None)


def _zygote_gone(zygote_pid: int, zygote_pidfd: int | None) -> bool:
    """Whether the zygote died before our parent-death signal was set (then it never comes).
    In a pid namespace of our own ``getppid()`` is 0 whoever the parent is: ask its pidfd."""
    if zygote_pidfd is None:
        return os.getppid() != zygote_pid
    try:
        return bool(select.select([zygote_pidfd], [], [], 0)[0])  # a pidfd is readable once its process exited
    finally:
        os.close(zygote_pidfd)


def _setup_process(
    spec: SessionSpec, zygote_pid: int, zygote_pidfd: int | None
) -> tuple[dict[str, str], int, bool, landlock.Ruleset | None]:
    """Sandbox the process itself (no session yet): returns (isolation facts, output memfd,
    whether /tmp and /dev/shm are the session's own, the filesystem view less the working
    directory, or None when Landlock is off: then the facts say why).

    Done right after the fork, so a pre-forked spare is ready to be assigned a session at once.
    """
    own_pid_ns = os.getpid() == 1
    pid = sandbox.outer_pid() if own_pid_ns else os.getpid()  # the pid the zygote (and the cgroup) knows
    os.setsid()
    signal.set_wakeup_fd(-1)
    for sig, handler in _HANDLERS.items():
        signal.signal(sig, handler)

    out_fd = os.memfd_create("cell-output", os.MFD_CLOEXEC)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)

    limits = spec.limits
    uid_mode = spec.uid is not None
    private_tmp = False
    facts = sandbox.apply_rlimits(
        memory_bytes=limits.memory_mib << 20,
        max_processes=limits.max_processes if uid_mode else None,
        max_file_bytes=limits.max_file_mib << 20,
        max_open_files=limits.max_open_files,
        cpu_s=int(limits.cpu_s_per_session),
    )
    if os.geteuid() == 0:  # kernel layers that need privileges, set up before dropping them
        if spec.memcg:
            try:
                memcg.join(*spec.memcg, pid, (limits.memory_mib + MEMCG_SLACK_MIB) << 20)
                facts["memory_accounting"] = (
                    f"memory cgroup ({spec.memcg[0]}) of memory_mib + {MEMCG_SLACK_MIB} MiB per session: anonymous "
                    "memory, memfd, tmpfs, shm and page cache all counted (ordinary allocations hit RLIMIT_AS first: MemoryError)"
                )
            except OSError as exc:
                facts["memory_accounting"] = f"off: RLIMIT_AS only: {exc}"
        try:
            facts["tmp"] = sandbox.private_tmp(limits.tmp_mib, spec.pool_root, spec.read_paths)
            private_tmp = True
        except OSError as exc:
            facts["tmp"] = f"off: host /tmp (writes blocked by the filesystem view): {exc}"
        if own_pid_ns:
            try:
                if not private_tmp:
                    raise OSError("no mount namespace of its own to mount it in")
                facts["proc"] = sandbox.mount_own_proc()
            except OSError as exc:
                facts["proc"] = f"off: own pid namespace, but the host's /proc is still mounted: {exc}"
    else:
        facts.setdefault("memory_accounting", "off: RLIMIT_AS only (memory cgroups need root)")
        facts["tmp"] = "off: no private /tmp (mount namespaces need root); host /tmp is not writable through the filesystem view"
    if uid_mode:
        sandbox.drop_privileges(spec.uid, spec.gid)
        facts["user"] = f"own uid {spec.uid} per session (root dropped); directory mode 1770, data files root-owned 0444"
    else:
        facts["user"] = "same uid as the pool (no per-session uid); files, signals and /proc guarded by audit hook"
        facts["processes"] = f"at most {limits.max_processes} processes per session, counted by audit hook (threads not limited)"
    # After the uid change, which clears it: die with the zygote.
    sandbox.set_parent_death_signal(signal.SIGKILL)
    if _zygote_gone(zygote_pid, zygote_pidfd):
        os._exit(70)
    sandbox.set_no_new_privs()
    try:  # here, off the session's start path (spares are made ahead), after the last mount
        facts["seccomp"] = seccomp.install()
    except OSError as exc:
        facts["seccomp"] = f"off: {exc}"
    try:  # after the last mount (/proc, /tmp): rules hold the mounts their paths name now
        rules: landlock.Ruleset | None = landlock.ruleset(
            read=spec.read_paths, write=("/tmp", "/dev/shm") if private_tmp else (), devices=sandbox.DEVICES
        )
    except OSError as exc:
        rules = None
        facts["filesystem_view"] = f"off: uid permissions and the audit hook only: {exc}"
    os.environ.clear()
    return facts, out_fd, private_tmp, rules


def _assign(
    spec: SessionSpec, msg: Assign, facts: dict[str, str], private_tmp: bool, rules: landlock.Ruleset | None
) -> dict[str, Any]:
    """Become a given session: its directory (prepared by the pool), files, tools; returns globals."""
    limits = spec.limits
    uid_mode = spec.uid is not None
    workdir = msg.workdir
    os.chdir(workdir)
    os.environ.update(sandbox.scrubbed_env(workdir))
    sandbox.install_audit_hook(
        workdir=workdir,
        protected=msg.files,
        pool_root=spec.pool_root,
        guard_signals=not uid_mode,
        max_processes=None if uid_mode else limits.max_processes,
        private_dirs=("/tmp", "/dev/shm") if private_tmp else (),
    )
    tempfile.tempdir = None  # the zygote cached its own; sessions use TMPDIR (their directory)
    if rules is not None:
        try:
            facts["filesystem_view"] = rules.enforce(write=[workdir])
        except OSError as exc:
            facts["filesystem_view"] = f"off: uid permissions and the audit hook only: {exc}"
    sys.argv = [""]
    sys.path = [p for p in sys.path if p and p != spec.pool_root]  # the working directory is not importable
    g: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    if msg.db:
        tools = SqlTools(
            os.path.join(workdir, msg.db),
            workdir,
            max_rows=limits.sql_max_rows,
            print_rows=limits.sql_print_rows,
        )
        g["get_db_info"] = tools.get_db_info
        g["execute_sql"] = tools.execute_sql
    return g


def _trim() -> None:
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _give_back_memory() -> None:
    """After the reply is sent (off the caller's critical path): collect cyclic garbage and
    return free heap pages to the kernel, so an idle session keeps only what it really holds."""
    gc.collect()
    _trim()


def _format_error(exc: BaseException) -> str:
    if _isinstance(exc, SyntaxError):
        lines = traceback.format_exception_only(type(exc), exc)
    else:
        tb = exc.__traceback__
        # Drop the runner's own frame so the traceback starts at the cell.
        while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell"):
            tb = tb.tb_next
        lines = traceback.format_exception(type(exc), exc, tb)
    text = "".join(lines).rstrip("\n").splitlines()
    if len(text) > ERROR_MAX_LINES:
        text = text[:1] + ["  ..."] + text[-(ERROR_MAX_LINES - 2) :]
    return "\n".join(text)


def bounded(text: str, max_chars: int) -> str:
    """Error text gets the output's treatment: head + tail kept, NULs and lone surrogates cleaned."""
    return capture.clean_text(truncate_middle(text, max_chars)[0])


def _describe(exc: BaseException, max_chars: int) -> tuple[str, str, str]:
    """(name, value, traceback text) of a cell's exception, bounded; never raises, even for an
    exception whose ``__str__`` fails, loops (the pool's interrupt ends it) or is gigabytes long."""
    name = type(exc).__name__
    try:
        value = bounded(str(exc), max_chars)
    except BaseException:  # noqa: BLE001
        value = "<the exception's message could not be rendered>"
    try:
        text = _format_error(exc)
    except BaseException:  # noqa: BLE001
        text = f"{name}: {value}"
    return bounded(name, 200), value, bounded(text, max_chars)


def _kill_strays(uid_mode: bool) -> None:
    """Processes a cell started do not outlive it: kill them, then reap our children."""
    if uid_mode:
        try:
            os.kill(-1, signal.SIGKILL)  # every process of this session's uid except ourselves
        except OSError:
            pass
    else:
        me, pgid = os.getpid(), os.getpgid(0)
        for pid in procs.pids():
            st = procs.stat(pid)
            if pid != me and st is not None and (st[2] == pgid or st[1] == me):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
    deadline = time.monotonic() + 2.0
    while True:  # SIGKILL is asynchronous: wait until the killed children are gone
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() > deadline:
                return
            time.sleep(0.001)


def _run_cell(g: dict[str, Any], req: RunCell, cap: capture.Capture, out_fd: int, uid_mode: bool, guard: Guard) -> CellReply:
    me = os.getpid()  # (the guard restored the machinery after the previous cell; no thread outlives a cell)
    cap.reset()
    max_chars = cap.max_chars
    code, name = req.code, f"<cell-{req.cell}>"
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + req.cpu_s) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    threads_before = set(threading.enumerate())
    failure: BaseException | None = None
    t0 = time.perf_counter()
    try:
        _State.interrupted = False
        _State.in_cell = True
        _exec(_compile(code, name, "exec"), g)
    except BaseException as exc:  # noqa: BLE001 - every failure of user code becomes an observation
        failure = exc
    finally:
        _State.in_cell = False
        _stop_tracing()  # before any Python frame of ours: a cell's trace function must not run it
        guard.restore()  # then at once: an alarm the cell set must not fire after it
    duration = time.perf_counter() - t0
    if os.getpid() != me:  # a forked copy of this process finished the cell: it must not answer
        os._exit(0)
    interrupted = _State.interrupted
    error = ename = evalue = None
    if failure is not None:
        _State.in_cell = True  # rendering runs user code (__str__): the pool's interrupt may end it
        try:
            if interrupted and _isinstance(failure, KeyboardInterrupt):
                ename, evalue = "TimeoutError", "the cell was interrupted: it exceeded its wall-clock limit"
                error = evalue
            elif _isinstance(failure, SystemExit):
                ename, evalue = "SystemExit", bounded(repr(failure.code), max_chars)
                error = f"SystemExit({evalue}): exit() and sys.exit() do not end the session"
            else:
                ename, evalue, error = _describe(failure, max_chars)
                if _isinstance(failure, MemoryError):
                    error += f"\n(the session's memory limit is {req.memory_mib} MiB)"
        except BaseException:  # noqa: BLE001
            ename, evalue, error = type(failure).__name__, "", type(failure).__name__
        finally:
            _State.in_cell = False
            _stop_tracing()
            guard.restore()  # rendering ran user code too (__str__, __repr__): undo what it did to the machinery
        failure = None  # drop the traceback's frames (and the memory they hold) now
    interrupted = interrupted and ename == "TimeoutError"
    _kill_strays(uid_mode)
    stray = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    text, total, cut = capture.merge(
        (cap.merged.head, cap.merged.tail(), cap.merged.total), capture.read_fd_capture(out_fd, max_chars), max_chars
    )
    return CellReply(
        seq=req.cell,
        nonce=req.nonce,
        output=text,
        stdout=cap.stdout.text(),
        stderr=cap.stderr.text(),
        ok=error is None,
        error=error,
        error_name=ename,
        error_value=evalue,
        interrupted=interrupted,
        output_chars=total,
        truncated_chars=cut,
        cell_s=duration,
        stray_threads=len(stray),
    )


def _receive(sock: socket.socket, kind: type[messages.M]) -> messages.M | None:
    """The pool's next request if it is a ``kind``; None when the pool closed the channel or
    sent anything else (the session then exits)."""
    try:
        return messages.decode(wire.recv_sync(sock), kind)
    except (wire.WireClosed, wire.WireCorrupt, OSError):
        return None


def _runner_namespaces() -> tuple[tuple[Any, ...], tuple[type, ...]]:
    """The runner's own modules and the wire records it builds, which its guard restores."""
    return (sys.modules[__name__], capture, procs, wire, messages, sqltools, observation), (messages.Message, RunCell, CellReply)


def prepare_guard() -> None:
    """In the zygote, before it forks: the guard's copies of what it restores, made once for all sessions."""
    guard_module.prepare(*_runner_namespaces())


def session_main(sock: socket.socket, spec: SessionSpec, zygote_pid: int, zygote_pidfd: int | None) -> NoReturn:
    """Entry point of a forked session process; never returns."""
    code = 0
    try:
        try:
            facts, out_fd, private_tmp, rules = _setup_process(spec, zygote_pid, zygote_pidfd)
        except BaseException as exc:  # noqa: BLE001
            wire.send_sync(sock, StartFailed(error=f"{type(exc).__name__}: {exc}").to_wire())
            os._exit(71)
        wire.send_sync(sock, SpareReady().to_wire())
        msg = _receive(sock, Assign)
        if msg is None:
            os._exit(0)
        try:
            g = _assign(spec, msg, facts, private_tmp, rules)
        except BaseException as exc:  # noqa: BLE001
            wire.send_sync(sock, StartFailed(error=f"{type(exc).__name__}: {exc}").to_wire())
            os._exit(71)
        uid_mode = spec.uid is not None
        cap = capture.Capture(spec.limits.output_max_chars)
        streams = (cap.stdout, cap.stderr, open(os.devnull, encoding="utf-8"))  # noqa: SIM115
        guard = Guard(g, _HANDLERS, out_fd, streams)
        modules, classes = _runner_namespaces()
        guard.protect(*modules)
        guard.protect_classes(*classes)
        guard.restore()  # installs the capture streams
        wire.send_sync(sock, SessionReady(pid=os.getpid(), isolation=facts).to_wire())
        while True:
            req = _receive(sock, RunCell)
            if req is None:
                break
            wire.send_sync(sock, _run_cell(g, req, cap, out_fd, uid_mode, guard).to_wire())
            _give_back_memory()
    except BaseException:  # noqa: BLE001 - the pool sees EOF and reports the crash
        code = 72
    os._exit(code)

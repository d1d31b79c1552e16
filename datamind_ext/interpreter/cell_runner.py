"""The session process: set up the sandbox once, then run cells in persistent globals.

This code runs in a child forked from the warm zygote, so everything the zygote imported is
already there (copy-on-write) and a session costs a fork, not an interpreter start-up. It
talks to the pool over one Unix socket, one JSON frame per request and per reply.
"""

from __future__ import annotations

import builtins
import linecache
import os
import resource
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any, NoReturn

from datamind_ext.interpreter import capture, sandbox, wire

ERROR_MAX_LINES = 30


class CpuTimeExceeded(Exception):
    """Raised in a cell when it used up its CPU-time limit."""


class _State:
    in_cell = False


def _on_sigint(signum: int, frame: Any) -> None:
    # The pool interrupts a cell that ran past its wall-clock limit; outside a cell we ignore it
    # so the reply in flight is never cut.
    if _State.in_cell:
        raise KeyboardInterrupt


def _on_sigxcpu(signum: int, frame: Any) -> None:
    if _State.in_cell:
        raise CpuTimeExceeded("the cell exceeded its CPU-time limit")


def _setup_process(spec: dict[str, Any], zygote_pid: int) -> tuple[dict[str, str], int]:
    """Sandbox the process itself (no session yet): returns (isolation facts, output memfd).

    Done right after the fork, so a pre-forked spare is ready to be assigned a session at once.
    """
    os.setsid()
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, _on_sigint)
    signal.signal(signal.SIGXCPU, _on_sigxcpu)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    out_fd = os.memfd_create("cell-output", os.MFD_CLOEXEC)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)

    limits = spec["limits"]
    uid_mode = spec["uid"] is not None
    facts = sandbox.apply_rlimits(
        memory_bytes=limits["memory_mib"] << 20,
        max_processes=limits["max_processes"] if uid_mode else None,
        max_file_bytes=limits["max_file_mib"] << 20,
        max_open_files=limits["max_open_files"],
        cpu_s=int(limits["cpu_s_per_session"]),
    )
    if uid_mode:
        sandbox.drop_privileges(spec["uid"], spec["gid"])
        facts["user"] = f"own uid {spec['uid']} per session (root dropped); directory mode 1770, data files root-owned 0444"
    else:
        facts["user"] = "same uid as the pool (no per-session uid); files, signals and /proc guarded by audit hook"
        facts["processes"] = f"at most {limits['max_processes']} processes per session, counted by audit hook (threads not limited)"
    # After the uid change, which clears it: die with the zygote.
    sandbox.set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != zygote_pid:
        os._exit(70)
    sandbox.set_no_new_privs()
    os.environ.clear()
    return facts, out_fd


def _assign(spec: dict[str, Any], msg: dict[str, Any]) -> dict[str, Any]:
    """Become a given session: its directory (prepared by the pool), files, tools; returns globals."""
    limits = spec["limits"]
    uid_mode = spec["uid"] is not None
    workdir = msg["workdir"]
    os.chdir(workdir)
    os.environ.update(sandbox.scrubbed_env(workdir))
    sandbox.install_audit_hook(
        workdir=workdir,
        protected=msg["files"],
        pool_root=spec["pool_root"],
        guard_signals=not uid_mode,
        max_processes=None if uid_mode else limits["max_processes"],
    )
    sys.argv = [""]
    sys.path = [p for p in sys.path if p and p != spec["pool_root"]]  # the working directory is not importable
    g: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    if msg.get("db"):
        from datamind_ext.interpreter.sqltools import SqlTools

        tools = SqlTools(
            os.path.join(workdir, msg["db"]),
            workdir,
            max_rows=limits["sql_max_rows"],
            print_rows=limits["sql_print_rows"],
        )
        g["get_db_info"] = tools.get_db_info
        g["execute_sql"] = tools.execute_sql
    return g


def _trim() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _give_back_memory() -> None:
    """After the reply is sent (off the caller's critical path): collect cyclic garbage and
    return free heap pages to the kernel, so an idle session keeps only what it really holds."""
    import gc

    gc.collect()
    _trim()


def _format_error(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
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


def _kill_strays(uid_mode: bool) -> None:
    """Processes a cell started do not outlive it: kill them, then reap our children."""
    if uid_mode:
        try:
            os.kill(-1, signal.SIGKILL)  # every process of this session's uid except ourselves
        except OSError:
            pass
    else:
        me, pgid = os.getpid(), os.getpgid(0)
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    data = f.read()
                fields = data[data.rindex(b")") + 2 :].split()
                if int(fields[2]) == pgid or int(fields[1]) == me:
                    os.kill(int(entry), signal.SIGKILL)
            except (OSError, ValueError, IndexError):
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


def _run_cell(g: dict[str, Any], req: dict[str, Any], cap: capture.BoundedText, out_fd: int, uid_mode: bool) -> dict[str, Any]:
    me = os.getpid()
    cap.reset()
    code, name = req["code"], f"<cell-{req['cell']}>"
    linecache.cache[name] = (len(code), None, code.splitlines(True), name)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + req["cpu_s"]) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    threads_before = set(threading.enumerate())
    ok, error, interrupted = True, None, False
    t0 = time.perf_counter()
    try:
        _State.in_cell = True
        exec(compile(code, name, "exec"), g)
    except KeyboardInterrupt:
        ok, interrupted = False, True
        error = "the cell was interrupted: it exceeded its wall-clock limit"
    except SystemExit as exc:
        ok, error = False, f"SystemExit({exc.code!r}): exit() and sys.exit() do not end the session"
    except BaseException as exc:  # noqa: BLE001 - every failure of user code becomes an observation
        ok, error = False, _format_error(exc)
        if isinstance(exc, MemoryError):
            error += f"\n(the session's memory limit is {req['memory_mib']} MiB)"
    finally:
        _State.in_cell = False
    duration = time.perf_counter() - t0
    if os.getpid() != me:  # a forked copy of this process finished the cell: it must not answer
        os._exit(0)
    sys.stdout, sys.stderr = cap, cap
    _kill_strays(uid_mode)
    stray = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    text, total, cut = capture.merge(
        (cap.head, cap.tail(), cap.total), capture.read_fd_capture(out_fd, cap.max_chars), cap.max_chars
    )
    return {
        "output": text,
        "ok": ok,
        "error": error,
        "interrupted": interrupted,
        "output_chars": total,
        "truncated_chars": cut,
        "cell_s": duration,
        "stray_threads": len(stray),
    }


def session_main(sock: socket.socket, spec: dict[str, Any], zygote_pid: int) -> NoReturn:
    """Entry point of a forked session process; never returns."""
    code = 0
    try:
        try:
            facts, out_fd = _setup_process(spec, zygote_pid)
        except BaseException as exc:  # noqa: BLE001
            wire.send_sync(sock, {"ready": False, "error": f"{type(exc).__name__}: {exc}"})
            os._exit(71)
        wire.send_sync(sock, {"ready": "spare"})
        msg = wire.recv_sync(sock)
        if msg.get("op") != "assign":
            os._exit(0)
        try:
            g = _assign(spec, msg)
        except BaseException as exc:  # noqa: BLE001
            wire.send_sync(sock, {"ready": False, "error": f"{type(exc).__name__}: {exc}"})
            os._exit(71)
        uid_mode = spec["uid"] is not None
        cap = capture.BoundedText(spec["limits"]["output_max_chars"])
        sys.stdout, sys.stderr, sys.stdin = cap, cap, open(os.devnull, encoding="utf-8")  # noqa: SIM115
        wire.send_sync(sock, {"ready": True, "pid": os.getpid(), "isolation": facts})
        while True:
            try:
                req = wire.recv_sync(sock)
            except (wire.WireClosed, OSError):
                break
            if req.get("op") != "run":
                break
            wire.send_sync(sock, _run_cell(g, req, cap, out_fd, uid_mode))
            _give_back_memory()
    except BaseException:  # noqa: BLE001 - the pool sees EOF and reports the crash
        code = 72
    os._exit(code)

"""The pool: one warm zygote, many persistent sessions, all driven from asyncio.

Nothing here blocks the event loop: the zygote and the sessions are separate processes reached
through non-blocking Unix sockets, and the only filesystem work (staging a data file once,
removing a session directory) runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from datamind_ext.errors import UserError
from datamind_ext.interpreter import memcg, procs, sandbox, wire
from datamind_ext.interpreter.capture import clean_text
from datamind_ext.interpreter.limits import Limits
from datamind_ext.interpreter.result import ExecResult
from datamind_ext.interpreter.zygote import DEFAULT_PRELOAD, MAX_DATAGRAM
from datamind_ext.protocol.observation import truncate_middle

DB_SUFFIXES = (".sqlite", ".sqlite3", ".db")
SESSION_START_TIMEOUT_S = 60.0
EXIT_WAIT_S = 10.0


class InterpreterError(RuntimeError):
    """The pool itself cannot work (the zygote failed to start or died)."""


def _remove_tree(path: Path) -> None:
    """Unmount what the pool mounted below ``path`` (quota tmpfs, bound data files), then delete it."""
    sandbox.unmount_tree(str(path))
    shutil.rmtree(path, ignore_errors=True)


def _root_parent() -> str | None:
    """Where the pool's temporary root goes: outside /tmp when sessions get a private /tmp (root),
    so that their writable /tmp never contains the pool's tree; else the usual temp dir."""
    if os.geteuid() == 0 and os.path.isdir("/var/tmp") and os.access("/var/tmp", os.W_OK):
        return "/var/tmp"
    return None


_REPLY_TYPES: dict[str, type | tuple[type, ...]] = {
    "output": str, "ok": bool, "error": (str, type(None)), "error_name": (str, type(None)),
    "error_value": (str, type(None)), "interrupted": bool, "output_chars": int, "truncated_chars": int,
    "cell_s": (int, float), "stray_threads": int,
}


def parse_reply(raw: Any, req: dict[str, Any], max_chars: int) -> dict[str, Any] | None:
    """The session's reply to ``req`` with every field type-checked and its text bounded and
    cleaned, or None when it is not that reply (wrong shape, an earlier cell's, a forged frame)."""
    if not isinstance(raw, dict) or raw.get("seq") != req["cell"] or raw.get("nonce") != req["nonce"]:
        return None
    reply = {}
    for key, kind in _REPLY_TYPES.items():
        value = raw.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return None
        reply[key] = value
    if reply["ok"] == (reply["error"] is not None):
        return None
    for key in ("output", "error", "error_name", "error_value"):
        if reply[key] is not None:
            reply[key] = clean_text(truncate_middle(reply[key], max_chars + 256)[0])
    return reply


def _failure_kind(kind: str, reply: dict[str, Any] | None) -> str:
    if reply is not None:
        return reply["error_name"] or ("it left threads running" if reply["stray_threads"] else "error")
    return {"crashed": "its process died", "broken": "it corrupted the channel"}.get(kind, "it timed out")


def describe_exit(status: dict[str, Any] | None) -> str:
    if status is None:
        return "the session's process disappeared"
    if status.get("oom"):
        return (
            "the session's process was killed for exceeding its memory limit "
            "(memory_mib counts everything it holds: allocations, memfd, files in /tmp and /dev/shm)"
        )
    if "signal" in status:
        sig = status["signal"]
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        what = {
            "SIGSEGV": " (segmentation fault)",
            "SIGKILL": " (killed: by itself, the CPU-time limit or the out-of-memory killer)",
            "SIGABRT": " (aborted)",
            "SIGBUS": " (bus error)",
            "SIGFPE": " (arithmetic fault)",
            "SIGXCPU": " (CPU-time limit)",
        }.get(name, "")
        return f"the session's process was killed by {name}{what}"
    return f"the session's process exited with code {status.get('code')}"


class _Zygote:
    """Pool-side handle of the zygote process: requests, replies and exit events."""

    def __init__(self, root: Path, preload: Sequence[str], isolate_network: bool, isolate_user: bool, n_uids: int) -> None:
        self.root = root
        self.n_uids = n_uids
        self.isolate_user = isolate_user
        self.preload = list(preload)
        self.isolate_network = isolate_network
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.info: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future] = {}
        self._exits: dict[int, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None
        self._ready: asyncio.Future | None = None
        self.dead = False

    async def start(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        self.sock = ours
        env = dict(sandbox.SAFE_ENV)
        pkg_parent = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = pkg_parent
        config = json.dumps(
            {
                "preload": self.preload,
                "isolate_network": self.isolate_network,
                "isolate_user": self.isolate_user,
                "n_uids": self.n_uids,
            }
        )
        err_path = self.root / "zygote.err"
        with open(err_path, "wb") as err:
            self.proc = await asyncio.to_thread(
                subprocess.Popen,
                [sys.executable, "-m", "datamind_ext.interpreter.zygote", str(theirs.fileno()), config],
                pass_fds=[theirs.fileno()],
                env=env,
                cwd=str(self.root),
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,
            )
        theirs.close()
        self._ready = loop.create_future()
        self._reader = asyncio.create_task(self._read_loop(), name="interpreter-zygote-reader")
        try:
            self.info = await asyncio.wait_for(asyncio.shield(self._ready), timeout_s)
        except (TimeoutError, EOFError) as exc:
            tail = err_path.read_text(errors="replace")[-2000:] if err_path.exists() else ""
            await self.stop()
            raise InterpreterError(f"the interpreter zygote did not start: {exc or 'timeout'}\n{tail}") from None

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.sock is not None
        try:
            while True:
                data = await loop.sock_recv(self.sock, MAX_DATAGRAM)
                if not data:
                    break
                msg = json.loads(data)
                if msg.get("event") == "ready":
                    if self._ready and not self._ready.done():
                        self._ready.set_result(msg)
                elif msg.get("event") == "exit":
                    fut = self._exits.setdefault(msg["pid"], loop.create_future())
                    if not fut.done():
                        fut.set_result({k: v for k, v in msg.items() if k in ("code", "signal", "oom")})
                elif "id" in msg:
                    if "pid" in msg:
                        self._exits.setdefault(msg["pid"], loop.create_future())
                    fut = self._replies.pop(msg["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
        except (OSError, ValueError):
            pass
        finally:
            self.dead = True
            err = EOFError("the interpreter zygote exited")
            for fut in [self._ready, *self._replies.values()]:
                if fut is not None and not fut.done():
                    fut.set_exception(err)
            for fut in self._exits.values():
                if not fut.done():
                    fut.set_result(None)

    async def _send(self, msg: dict[str, Any], fds: Sequence[int] = ()) -> None:
        if self.dead or self.sock is None:
            raise InterpreterError("the interpreter zygote is not running")
        data = json.dumps(msg).encode()
        while True:
            try:
                socket.send_fds(self.sock, [data], list(fds)) if fds else self.sock.send(data)
                return
            except BlockingIOError:
                await asyncio.sleep(0.001)

    async def spawn(self, spec: dict[str, Any], fd: int) -> int:
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._replies[rid] = fut
        await self._send({"op": "spawn", "id": rid, "spec": spec}, [fd])
        try:
            reply = await fut
        except EOFError as exc:
            raise InterpreterError(str(exc)) from None
        return int(reply["pid"])

    async def signal(self, pid: int, sig: int) -> None:
        with contextlib.suppress(InterpreterError, OSError):
            await self._send({"op": "signal", "pid": pid, "sig": int(sig)})

    async def kill(self, pid: int) -> dict[str, int] | None:
        """Kill a session (and everything it left) and wait until the zygote has swept it."""
        with contextlib.suppress(InterpreterError, OSError):
            await self._send({"op": "kill", "pid": pid})
        return await self.wait_exit(pid, EXIT_WAIT_S)

    async def wait_exit(self, pid: int, timeout_s: float) -> dict[str, int] | None:
        fut = self._exits.setdefault(pid, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except TimeoutError:
            return None
        finally:
            if fut.done():
                self._exits.pop(pid, None)

    async def stop(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.send(json.dumps({"op": "shutdown"}).encode())
        proc = self.proc
        if proc is not None:
            try:
                await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.dead = True


@dataclasses.dataclass
class _Proc:
    """A forked, sandboxed process not yet (or no longer) bound to a session's directory."""

    pid: int
    uid: int | None
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@dataclasses.dataclass
class MemoryReport:
    """Unique memory of each live session and their total; evicted sessions hold none."""

    sessions_uss_bytes: dict[int, int]
    total_uss_bytes: int
    # What the kernel charges each session (memory cgroup: allocations, memfd, tmpfs, shm, page
    # cache), the figure its memory limit applies to; empty where memory cgroups are off.
    sessions_charged_bytes: dict[int, int]
    zygote_rss_bytes: int | None
    evicted_sessions: int
    evictions_total: int


class Session:
    """One persistent interpreter: globals survive from one cell to the next.

    Obtain it from :meth:`InterpreterPool.session`. ``run`` is safe to call from many tasks;
    cells of one session run one at a time, in call order.
    """

    def __init__(self, pool: InterpreterPool, sid: int, files: list[tuple[str, str]], db: str | None, uid: int | None):
        self.pool = pool
        self.id = sid
        self.workdir = pool.root / "sessions" / str(sid)
        self.files = [name for _, name in files]
        self._files = files
        self.db = db
        self.uid = uid
        self.history: list[str] = []  # successful cells, replayed after a crash or an eviction
        self.cells_run = 0
        self.restarts = 0
        self.isolation: dict[str, str] = {}
        self.last_used = time.monotonic()
        self._lock = asyncio.Lock()
        self._pid: int | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._closed = False
        self.evicted = False

    @property
    def pid(self) -> int | None:
        return self._pid

    def path(self, name: str) -> Path:
        """A file in the session's working directory (e.g. ``result.csv`` written by ``execute_sql``)."""
        p = (self.workdir / name).resolve()
        if self.workdir.resolve() not in p.parents:
            raise ValueError(f"{name!r} is not inside the session's working directory")
        return p

    # --- process lifecycle -----------------------------------------------------------------
    async def _spawn(self, proc: _Proc | None = None) -> None:
        """Give this session a process: a pre-forked spare (new sessions) or a fresh fork with
        the session's own uid (rebuilds), then assign it the session's directory and files."""
        if proc is None:
            proc = await self.pool._new_process(self.uid)
        self._pid, self._reader, self._writer = proc.pid, proc.reader, proc.writer
        await asyncio.to_thread(self.pool._prepare_workdir, self.workdir, self._files, self.uid)
        try:
            await wire.send_async(self._writer, {"op": "assign", "workdir": str(self.workdir), "files": self.files, "db": self.db})
            hello = await asyncio.wait_for(wire.recv_async(self._reader), SESSION_START_TIMEOUT_S)
        except (TimeoutError, wire.WireClosed):
            status = await self._kill()
            raise InterpreterError(f"the session did not start: {describe_exit(status)}") from None
        if not hello.get("ready"):
            await self._kill()
            raise InterpreterError(f"the session did not start: {hello.get('error')}")
        self.isolation = hello.get("isolation", {})
        self.evicted = False

    async def _kill(self) -> dict[str, int] | None:
        """Kill the process (and its leftovers); the working directory and history stay."""
        pid, self._pid = self._pid, None
        if self._writer is not None:
            self._writer.close()
            self._writer = self._reader = None
        if pid is None:
            return None
        return await self.pool._zygote.kill(pid)

    async def _rebuild(self, *, evicted: bool = False) -> tuple[int, str | None]:
        """New process; replay the successful cells (after a crash: or forget them, per ``on_crash``;
        an evicted session always gets its state back). Returns (cells replayed, why the session
        had to start fresh instead, or None).

        Replay has a time budget of its own and takes a concurrency slot per replayed cell, so a
        long replay never delays other sessions more than their own queueing would; a replay
        that fails again (the cell that poisoned the session, a changed data file) or runs out
        of budget falls back to a fresh session rather than looping.
        """
        lim = self.pool.limits
        if self._pid is not None:
            await self._kill()
        self.restarts += 1
        if lim.on_crash == "fresh" and not evicted:
            self.history.clear()
        async with self.pool._slots:
            await self._spawn()
        deadline = time.monotonic() + lim.replay_budget_s
        replayed, why = 0, None
        for code in list(self.history):
            left = deadline - time.monotonic()
            if left <= 0:
                why = f"replaying the earlier cells took more than its {lim.replay_budget_s:g} s budget"
                break
            req = self._request(code)
            async with self.pool._slots:
                kind, reply = await self._exchange(req, min(lim.timeout_s, left), interrupt=False)
            if kind == "timeout" and left < lim.timeout_s:
                why = f"replaying the earlier cells took more than its {lim.replay_budget_s:g} s budget"
                break
            if kind != "ok" or not reply["ok"] or reply["stray_threads"]:
                why = f"replaying earlier cell {replayed + 1} of {len(self.history)} failed ({_failure_kind(kind, reply)})"
                break
            replayed += 1
        if why is None:
            return replayed, None
        await self._kill()
        self.history.clear()
        async with self.pool._slots:
            await self._spawn()
        return 0, why

    def _request(self, code: str) -> dict[str, Any]:
        self.cells_run += 1
        lim = self.pool.limits
        return {
            "op": "run",
            "code": code,
            "cell": self.cells_run,
            "nonce": secrets.token_hex(8),
            "cpu_s": lim.cpu_s_per_cell,
            "memory_mib": lim.memory_mib,
        }

    async def _exchange(self, req: dict[str, Any], timeout: float, *, interrupt: bool) -> tuple[str, dict[str, Any] | None]:
        """Send one cell and read its reply: ("ok", reply) or (failure kind, None).

        Kinds: "crashed" (the process went away), "broken" (a frame that is not this cell's
        reply: the cell wrote into the channel), "timeout" (did not stop; with ``interrupt``
        it was sent SIGINT first, and a reply to the interrupt counts as "ok"),
        "timeout_crashed" (it died while being interrupted).
        """
        assert self._writer is not None and self._reader is not None
        reader = self._reader
        try:
            try:
                await wire.send_async(self._writer, req)
                raw = await asyncio.wait_for(wire.recv_async(reader), timeout)
            except TimeoutError:
                if not interrupt or self._pid is None:
                    return "timeout", None
                await self.pool._zygote.signal(self._pid, signal.SIGINT)
                try:
                    raw = await asyncio.wait_for(wire.recv_async(reader), self.pool.limits.interrupt_grace_s)
                except wire.WireClosed:
                    return "timeout_crashed", None
                except TimeoutError:
                    return "timeout", None
        except wire.WireClosed:
            return "crashed", None
        except wire.WireCorrupt:
            return "broken", None
        except asyncio.CancelledError:
            # The caller gave up: the reply still in flight would be read as the next cell's,
            # so drop this process; the next cell rebuilds the session by replay.
            await asyncio.shield(self._kill())
            raise
        reply = parse_reply(raw, req, self.pool.limits.output_max_chars)
        return ("ok", reply) if reply is not None else ("broken", None)

    # --- running cells ---------------------------------------------------------------------
    async def run(self, code: str, *, timeout_s: float | None = None) -> ExecResult:
        """Run one cell; its variables persist for the next.

        Never raises for anything user code does (failures, crashes, bytes written into the
        session's own channel): those become the result. Raises only when the pool cannot work.
        """
        if self._closed:
            raise InterpreterError("the session is closed")
        timeout = self.pool.limits.timeout_s if timeout_s is None else timeout_s
        async with self._lock:
            self.last_used = time.monotonic()
            try:
                notice = None
                if self._pid is None:
                    _, why = await self._rebuild(evicted=True)
                    if why is not None:
                        notice = f"the session was restarted fresh before this cell ({why}): earlier variables are gone"
                result = await self._run_locked(code, timeout)
                if notice is not None:
                    result = dataclasses.replace(result, restarted=True, notice=notice)
            finally:
                self.last_used = time.monotonic()
        self.pool._after_cell()
        return result

    async def _run_locked(self, code: str, timeout: float) -> ExecResult:
        t0 = time.perf_counter()
        async with self.pool._slots:
            kind, reply = await self._exchange(self._request(code), timeout, interrupt=True)
        if reply is None:
            return await self._after_failure(kind, t0, timeout)
        duration = time.perf_counter() - t0
        timed_out = reply["interrupted"]
        error = reply["error"]
        if timed_out:
            error = (
                f"TimeoutError: the cell exceeded its {timeout:g} s wall-clock limit and was interrupted "
                "(variables set before the interruption are kept)"
            )
        result = ExecResult(
            output=reply["output"],
            ok=reply["ok"],
            error=error,
            timed_out=timed_out,
            duration_s=duration,
            cell_s=reply["cell_s"],
            output_chars=reply["output_chars"],
            truncated_chars=reply["truncated_chars"],
            error_name=reply["error_name"],
            error_value=reply["error_value"],
        )
        if reply["stray_threads"]:
            n = reply["stray_threads"]
            note = (
                f"RuntimeError: the cell left {n} thread(s) running; threads must finish within their cell, "
                "so the session was restarted without this cell"
            )
            replayed, why = await self._rebuild()
            if why is not None:
                note += f"; {why}, so it was restarted fresh: earlier variables are gone"
            return dataclasses.replace(
                result,
                ok=False,
                error=f"{error}\n{note}" if error else note,
                error_name=result.error_name or "RuntimeError",
                error_value=result.error_value or f"the cell left {n} thread(s) running",
                restarted=True,
                replayed_cells=replayed,
            )
        if result.ok:
            self.history.append(code)
        return result

    async def _after_failure(self, kind: str, t0: float, timeout: float) -> ExecResult:
        """The cell's process died, would not stop, or corrupted its channel: rebuild the session."""
        pid = self._pid
        if kind in ("timeout", "broken"):
            status = await self._kill()
        else:
            self._pid = None
            if self._writer is not None:
                self._writer.close()
                self._writer = self._reader = None
            status = await self.pool._zygote.wait_exit(pid, EXIT_WAIT_S) if pid is not None else None
        timed_out = kind.startswith("timeout")
        if kind == "timeout":
            name, value = "TimeoutError", f"the cell exceeded its {timeout:g} s wall-clock limit and did not stop when interrupted; its process was killed"
        elif kind == "timeout_crashed":
            name, value = "TimeoutError", f"the cell exceeded its {timeout:g} s wall-clock limit and its process died when interrupted ({describe_exit(status)})"
        elif kind == "broken":
            name, value = "SessionBroken", "the cell wrote into the session's control channel (or corrupted its reply); its process was killed"
        else:
            name, value = "SessionCrashed", describe_exit(status)
        why = f"{name}: {value}"
        duration = time.perf_counter() - t0
        replayed, fresh_why = await self._rebuild()
        if fresh_why is not None:
            why += f"; {fresh_why}, so the session was restarted fresh: earlier variables are gone"
        elif self.pool.limits.on_crash == "replay":
            why += f"; the session was restarted and its {replayed} earlier successful cell(s) replayed"
        else:
            why += "; the session was restarted fresh: earlier variables are gone"
        return ExecResult(
            output="", ok=False, error=why, timed_out=timed_out, duration_s=duration, restarted=True,
            replayed_cells=replayed, error_name=name, error_value=value,
        )

    async def memory_uss_bytes(self) -> int | None:
        """Unique memory of the session's process now (None when evicted or dead)."""
        pid = self._pid
        return None if pid is None else await asyncio.to_thread(procs.uss_bytes, pid)

    async def evict(self) -> bool:
        """Free this session's process; its next cell rebuilds it by replay. False if busy."""
        if self._lock.locked() or self._pid is None or self._closed:
            return False
        async with self._lock:
            if self._pid is None:
                return False
            await self._kill()
            self.evicted = True
            return True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            await self._kill()
        await asyncio.to_thread(_remove_tree, self.workdir)
        self.pool._release(self)


class InterpreterPool:
    """A warm zygote and the sessions forked from it.

    ``max_sessions`` open sessions at most (opening more waits: backpressure);
    ``spare_sessions`` processes are kept forked and sandboxed ahead of time, so opening a
    session usually costs a message, not a fork (a fork of the warm image takes 10-30 ms);
    ``max_concurrency`` cells run at once (default: the number of CPU cores), the rest queue;
    ``memory_budget_mib``: when the sessions' total unique memory exceeds it, the least
    recently used idle sessions are evicted and rebuilt by replay when next used.
    ``isolate_network`` / ``isolate_user``: turn off the network namespace / per-session uids
    (both on by default, applied where the kernel and privileges allow; see ``isolation``).
    """

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        max_sessions: int = 256,
        max_concurrency: int | None = None,
        memory_budget_mib: int | None = None,
        spare_sessions: int = 4,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        isolate_network: bool = True,
        isolate_user: bool = True,
        start_timeout_s: float = 180.0,
    ) -> None:
        self.limits = limits or Limits()
        self.max_sessions = max_sessions
        self.max_concurrency = max_concurrency or os.cpu_count() or 1
        self.memory_budget_mib = memory_budget_mib
        self.spare_sessions = spare_sessions
        self._spares: collections.deque[_Proc] = collections.deque()
        self._refill_task: asyncio.Task | None = None
        self.preload = list(preload)
        self.isolate_network = isolate_network
        self.isolate_user = isolate_user
        self.start_timeout_s = start_timeout_s
        self.root: Path = Path()
        self.sessions: dict[int, Session] = {}
        self.evictions = 0
        self._zygote: _Zygote
        self._slots = asyncio.Semaphore(self.max_concurrency)
        self._open = asyncio.Semaphore(max_sessions)
        self._ids = itertools.count(1)
        self._uid_base = 0  # leased host-wide by the zygote (see uids.py)
        self._free_uids: list[int] = []
        self._staged: dict[tuple[str, int, int], str] = {}
        self._stage_lock = asyncio.Lock()
        self._started = False
        self._closed = False
        self._evict_task: asyncio.Task | None = None
        self._evict_dirty = False
        self._quota = False
        self._quota_fact = ""
        self._all_pgids: set[int] = set()
        self._zygote_pid: int | None = None
        self.uid_mode = False

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> InterpreterPool:
        if self._started:
            return self
        self.root = Path(tempfile.mkdtemp(prefix="datamind-interp-", dir=_root_parent()))
        os.chmod(self.root, 0o711)
        for sub in ("sessions", "stage"):
            (self.root / sub).mkdir(mode=0o711)
        self._quota_fact = "off: working directories on the host filesystem, RLIMIT_FSIZE per file only (quota mounts need root)"
        if os.geteuid() == 0:
            try:
                sandbox.share_mounts_under(str(self.root / "sessions"))
                self._quota = True
                self._quota_fact = (
                    f"tmpfs of {self.limits.disk_mib} MiB per working directory, {self.limits.tmp_mib} MiB for /tmp + /dev/shm"
                )
            except OSError as exc:
                self._quota_fact = f"off: {exc}"
        n_uids = self.max_sessions + self.spare_sessions
        self._zygote = _Zygote(self.root, self.preload, self.isolate_network, self.isolate_user, n_uids)
        try:
            await self._zygote.start(self.start_timeout_s)
        except BaseException:
            _remove_tree(self.root)
            raise
        self.uid_mode = bool(self._zygote.info.get("uid_mode"))
        self._uid_base = int(self._zygote.info.get("uid_base", 0))
        self._zygote_pid = self._zygote.proc.pid if self._zygote.proc else None
        self._free_uids = list(range(self._uid_base + n_uids - 1, self._uid_base - 1, -1)) if self.uid_mode else []
        self._started = True
        self._refill_spares()
        return self

    async def close(self) -> None:
        if self._closed or not self._started:
            self._closed = True
            return
        self._closed = True
        for task in (self._evict_task, self._refill_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await asyncio.gather(*(s.close() for s in list(self.sessions.values())), return_exceptions=True)
        while self._spares:
            proc = self._spares.popleft()
            proc.writer.close()
            await self._zygote.kill(proc.pid)
        await self._zygote.stop()
        await self._wait_helpers_gone()
        await asyncio.to_thread(_remove_tree, self.root)

    async def __aenter__(self) -> InterpreterPool:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def zygote_pid(self) -> int | None:
        return self._zygote.proc.pid if self._started and self._zygote.proc else None

    @property
    def uid_range(self) -> range:
        """The uids this pool's sessions run as (empty when sessions keep the pool's uid)."""
        return range(self._uid_base, self._uid_base + self.max_sessions + self.spare_sessions) if self.uid_mode else range(0)

    def processes(self) -> list[int]:
        """Every live process this pool is responsible for (zygote, sessions, anything they started),
        found by uid, process group and parentage; empty after :meth:`close` unless something leaked."""
        roots = {self._zygote_pid} if self._zygote_pid else set()
        return procs.find_processes(uids=self.uid_range, pgids=self._all_pgids, roots=roots)

    @property
    def service_pids(self) -> list[int]:
        """The zygote and its helper (the uid sweeper): alive as long as the pool."""
        if not self._started or self._zygote_pid is None:
            return []
        return [self._zygote_pid, *self._zygote.info.get("helper_pids", [])]

    @property
    def spare_pids(self) -> list[int]:
        """Pre-forked processes waiting for a session."""
        return [p.pid for p in self._spares]

    @property
    def isolation(self) -> dict[str, str]:
        return {**self._zygote.info.get("isolation", {}), "disk_quota": self._quota_fact}

    async def _wait_helpers_gone(self) -> None:
        """The zygote's helpers (sweeper, janitor) exit right after it; wait so none outlives close()."""
        helpers = list(self._zygote.info.get("helper_pids", []))
        deadline = time.monotonic() + EXIT_WAIT_S
        while helpers and time.monotonic() < deadline:
            helpers = [p for p in helpers if procs.alive(p)]
            if helpers:
                await asyncio.sleep(0.01)

    # --- sessions --------------------------------------------------------------------------
    async def _stage(self, path: str | os.PathLike[str]) -> tuple[str, str]:
        """Copy a data file once into the pool's read-only stage; sessions get hard links to it."""
        src = Path(path).expanduser()
        try:
            st = src.stat()
        except FileNotFoundError:
            raise UserError(f"data file not found: {src}") from None
        if not src.is_file():
            raise UserError(f"not a regular file: {src}")
        key = (str(src.resolve()), st.st_size, st.st_mtime_ns)
        async with self._stage_lock:
            staged = self._staged.get(key)
            if staged is None:
                folder = self.root / "stage" / hashlib.sha1(repr(key).encode()).hexdigest()[:16]

                def copy() -> str:
                    folder.mkdir(mode=0o711, exist_ok=True)
                    dest = folder / src.name
                    shutil.copyfile(src, dest)
                    os.chmod(dest, 0o444)
                    if self._quota:
                        sandbox.bind_readonly(str(dest), str(dest))  # what sessions get is bound from this
                    return str(dest)

                staged = await asyncio.to_thread(copy)
                self._staged[key] = staged
        return staged, src.name

    async def open_session(self, files: Sequence[str | os.PathLike[str]] = (), *, db: str | None = None) -> Session:
        """Open a session; call ``await session.close()`` when done (or use :meth:`session`)."""
        if not self._started or self._closed:
            raise InterpreterError("the pool is not running (use `async with InterpreterPool(...)`)")
        staged = [await self._stage(f) for f in files]
        names = [n for _, n in staged]
        if len(set(names)) != len(names):
            raise UserError(f"two data files share a name: {names}")
        if db is None:
            db = next((n for n in names if n.lower().endswith(DB_SUFFIXES)), None)
        elif db not in names:
            raise UserError(f"db {db!r} is not one of the session's files {names}")
        await self._open.acquire()
        try:
            proc = self._spares.popleft() if self._spares else None
            self._refill_spares()
            async with self._slots:
                if proc is None:
                    proc = await self._new_process(self._take_uid())
                session = Session(self, next(self._ids), staged, db, proc.uid)
                self.sessions[session.id] = session
                try:
                    await session._spawn(proc)
                except BaseException:
                    self.sessions.pop(session.id, None)
                    if proc.uid is not None:
                        self._free_uids.append(proc.uid)
                    await asyncio.to_thread(_remove_tree, session.workdir)
                    raise
        except BaseException:
            self._open.release()
            raise
        return session

    # --- processes -------------------------------------------------------------------------
    def _take_uid(self) -> int | None:
        if not self.uid_mode:
            return None
        if not self._free_uids:
            raise InterpreterError("no free session uid left (more processes than max_sessions + spare_sessions)")
        return self._free_uids.pop()

    async def _new_process(self, uid: int | None) -> _Proc:
        """Fork a sandboxed process from the zygote and wait until it is ready to be assigned."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        spec = {
            "uid": uid,
            "gid": uid,
            "pool_root": str(self.root),
            "limits": self.limits.model_dump(),
        }
        try:
            pid = await self._zygote.spawn(spec, theirs.fileno())
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._all_pgids.add(pid)
        ours.setblocking(False)
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=wire.MAX_FRAME_BYTES)
        try:
            hello = await asyncio.wait_for(wire.recv_async(reader), SESSION_START_TIMEOUT_S)
        except (TimeoutError, wire.WireClosed):
            hello = {"ready": False, "error": describe_exit(await self._zygote.kill(pid))}
        if hello.get("ready") != "spare":
            writer.close()
            await self._zygote.kill(pid)
            raise InterpreterError(f"the session did not start: {hello.get('error')}")
        return _Proc(pid, uid, reader, writer)

    def _refill_spares(self) -> None:
        if self.spare_sessions and not self._closed and (self._refill_task is None or self._refill_task.done()):
            self._refill_task = asyncio.create_task(self._refill_loop(), name="interpreter-spares")

    async def _refill_loop(self) -> None:
        """Keep ``spare_sessions`` pre-forked processes ready, one fork at a time, in the background."""
        while not self._closed and len(self._spares) < self.spare_sessions:
            if self.uid_mode and not self._free_uids:
                return
            uid = self._take_uid()
            try:
                proc = await self._new_process(uid)
            except (InterpreterError, OSError):
                if uid is not None:
                    self._free_uids.append(uid)
                return
            if self._closed:
                proc.writer.close()
                await self._zygote.kill(proc.pid)
                return
            self._spares.append(proc)

    def _prepare_workdir(self, workdir: Path, files: list[tuple[str, str]], uid: int | None) -> None:
        """Create the session's directory (root-owned, its own group, sticky) with its data files.

        Runs in the pool, which keeps its privileges: the session process cannot mount, link
        root-owned read-only files itself, nor delete them. As root the directory is a tmpfs
        of ``disk_mib`` (the session's disk quota) with the data files bound in read-only;
        it stays mounted across rebuilds, so an evicted or crashed session keeps its files.
        """
        if self._quota and os.path.ismount(workdir):
            return
        if not workdir.is_dir():
            workdir.mkdir(mode=0o700)
            if uid is not None:
                os.chown(workdir, 0, uid)
                os.chmod(workdir, 0o1770)
        if self._quota:
            sandbox.mount_workdir(str(workdir), self.limits.disk_mib, uid, files)
            return
        for staged, name in files:
            dest = workdir / name
            if not os.path.lexists(dest):
                try:
                    os.link(staged, dest)
                except OSError:
                    shutil.copyfile(staged, dest)
                    os.chmod(dest, 0o444)

    @contextlib.asynccontextmanager
    async def session(self, files: Sequence[str | os.PathLike[str]] = (), *, db: str | None = None) -> AsyncIterator[Session]:
        """``async with pool.session(files=[...]) as s:``; the session is closed on exit, even on error."""
        s = await self.open_session(files, db=db)
        try:
            yield s
        finally:
            await asyncio.shield(s.close())

    def _release(self, session: Session) -> None:
        if self.sessions.pop(session.id, None) is not None:
            if session.uid is not None:
                self._free_uids.append(session.uid)
            self._open.release()

    # --- memory ----------------------------------------------------------------------------
    async def memory_report(self) -> MemoryReport:
        live = {s.id: s.pid for s in self.sessions.values() if s.pid is not None}

        cg = self._zygote.info.get("memory_cgroup") if self._started else None

        def read() -> tuple[dict[int, int], dict[int, int], int | None]:
            out = {sid: procs.uss_bytes(pid) or 0 for sid, pid in live.items()}
            charged = {}
            if cg:
                for sid, pid in live.items():
                    n = memcg.usage_bytes(cg[0], cg[1], pid)
                    if n is not None:
                        charged[sid] = n
            zpid = self.zygote_pid
            return out, charged, (procs.rss_bytes(zpid) if zpid else None)

        per, charged, zygote_rss = await asyncio.to_thread(read)
        return MemoryReport(
            sessions_uss_bytes=per,
            total_uss_bytes=sum(per.values()),
            sessions_charged_bytes=charged,
            zygote_rss_bytes=zygote_rss,
            evicted_sessions=sum(1 for s in self.sessions.values() if s.evicted),
            evictions_total=self.evictions,
        )

    async def enforce_memory_budget(self) -> int:
        """Evict least recently used idle sessions until the total is under the budget; returns how many."""
        if self.memory_budget_mib is None:
            return 0
        budget = self.memory_budget_mib << 20
        report = await self.memory_report()
        total = report.total_uss_bytes
        evicted = 0
        for s in sorted(self.sessions.values(), key=lambda s: s.last_used):
            if total <= budget:
                break
            uss = report.sessions_uss_bytes.get(s.id)
            if uss is not None and await s.evict():
                total -= uss
                evicted += 1
                self.evictions += 1
        return evicted

    def _after_cell(self) -> None:
        """Check the memory budget after cells, one check at a time, coalescing requests."""
        if self.memory_budget_mib is None or self._closed:
            return
        self._evict_dirty = True
        if self._evict_task is None or self._evict_task.done():
            self._evict_task = asyncio.create_task(self._evict_loop(), name="interpreter-evict")

    async def _evict_loop(self) -> None:
        while self._evict_dirty and not self._closed:
            self._evict_dirty = False
            await self.enforce_memory_budget()

"""One persistent session: its process's lifecycle (spawn, kill, rebuild by replay) and its cells.

A session is driven by its pool (:mod:`pool`), which owns the zygote, the concurrency slots and
the working directories; results are built in :mod:`result`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from datamind_ext.interpreter import procs, sandbox, wire
from datamind_ext.interpreter.messages import (
    Assign,
    CellReply,
    Exited,
    RunCell,
    SessionReady,
    StartFailed,
    decode,
)
from datamind_ext.interpreter.result import (
    ExecResult,
    describe_exit,
    answers_earlier,
    failure_kind,
    parse_reply,
)
from datamind_ext.interpreter.zygote_client import EXIT_WAIT_S, InterpreterError

if TYPE_CHECKING:
    from datamind_ext.interpreter.pool import InterpreterPool

SESSION_START_TIMEOUT_S = 60.0
# Well-formed replies to earlier cells skipped while waiting for one cell's reply, before the
# channel counts as broken (a cell flooding it with copies of old replies).
MAX_STALE_REPLIES = 64


@dataclasses.dataclass
class ForkedProcess:
    """A forked, sandboxed process not yet (or no longer) bound to a session's directory."""

    pid: int
    uid: int | None
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


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
        self._sent: set[tuple[int, str]] = set()  # (cell, nonce) of every request sent to this process
        self._rebuilt_after_break = False  # the last cell broke the channel; no cell has succeeded since
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
    async def _spawn(self, proc: ForkedProcess | None = None) -> None:
        """Give this session a process: a pre-forked spare (new sessions) or a fresh fork with
        the session's own uid (rebuilds), then assign it the session's directory and files."""
        if proc is None:
            proc = await self.pool._new_process(self.uid)
        self._pid, self._reader, self._writer = proc.pid, proc.reader, proc.writer
        self._sent.clear()
        await asyncio.to_thread(self.pool._prepare_workdir, self.workdir, self._files, self.uid)
        try:
            await wire.send_async(self._writer, Assign(workdir=str(self.workdir), files=self.files, db=self.db).to_wire())
            raw = await asyncio.wait_for(wire.recv_async(self._reader), SESSION_START_TIMEOUT_S)
        except (TimeoutError, wire.WireClosed):
            status = await self._kill()
            raise InterpreterError(f"the session did not start: {describe_exit(status)}") from None
        try:
            hello = decode(raw, SessionReady, StartFailed)
        except wire.WireCorrupt as err:  # includes messages.Malformed
            hello = StartFailed(error=f"its ready message was not one of the protocol's ({err})")
        if not isinstance(hello, SessionReady):
            await self._kill()
            raise InterpreterError(f"the session did not start: {hello.error}")
        self.isolation = dict(hello.isolation)
        self.evicted = False

    async def _kill(self) -> Exited | None:
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
            if kind != "ok" or reply is None or not reply.ok or reply.stray_threads:
                why = f"replaying earlier cell {replayed + 1} of {len(self.history)} failed ({failure_kind(kind, reply)})"
                break
            replayed += 1
        if why is None:
            return replayed, None
        await self._kill()
        self.history.clear()
        async with self.pool._slots:
            await self._spawn()
        return 0, why

    def _request(self, code: str) -> RunCell:
        self.cells_run += 1
        lim = self.pool.limits
        return RunCell(code=code, cell=self.cells_run, nonce=secrets.token_hex(8), cpu_s=lim.cpu_s_per_cell, memory_mib=lim.memory_mib)

    async def _exchange(self, req: RunCell, timeout: float, *, interrupt: bool) -> tuple[str, CellReply | None]:
        """Send one cell and read its reply: ("ok", reply) or (failure kind, None).

        Kinds: "crashed" (the process went away), "broken" (a frame that is not this cell's
        reply: the cell wrote into the channel), "timeout" (did not stop; with ``interrupt``
        it was sent SIGINT first, and a reply to the interrupt counts as "ok"),
        "timeout_crashed" (it died while being interrupted).
        """
        assert self._writer is not None and self._reader is not None
        reply: CellReply | None
        try:
            try:
                await wire.send_async(self._writer, req.to_wire())
                self._sent.add((req.cell, req.nonce))
                reply = await self._await_reply(req, timeout)
            except TimeoutError:
                if not interrupt or self._pid is None:
                    return "timeout", None
                await self.pool._zygote.signal(self._pid, signal.SIGINT)
                try:
                    reply = await self._await_reply(req, self.pool.limits.interrupt_grace_s)
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
        return ("ok", reply) if reply is not None else ("broken", None)

    async def _await_reply(self, req: RunCell, timeout_s: float) -> CellReply | None:
        """This cell's reply, read within ``timeout_s``; None when a frame is neither it nor a
        well-formed reply to an earlier cell of this process (the channel is broken).

        Earlier cells' replies are skipped: a cell can read its own request, so it can forge a
        perfect reply to it (a lie only about itself, like printing one); the runner's true
        reply follows and must not be taken as the next cell's, nor break the session (and
        replay, which re-runs the forging cell, would then break it again)."""
        assert self._reader is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        for _ in range(MAX_STALE_REPLIES + 1):
            raw = await asyncio.wait_for(wire.recv_async(self._reader), deadline - loop.time())
            reply = parse_reply(raw, req, self.pool.limits.output_max_chars)
            if reply is not None:
                return reply
            if not answers_earlier(raw, self._sent):
                return None
        return None

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
        self._rebuilt_after_break = False
        duration = time.perf_counter() - t0
        timed_out = reply.interrupted
        error = reply.error
        if timed_out:
            error = (
                f"TimeoutError: the cell exceeded its {timeout:g} s wall-clock limit and was interrupted "
                "(variables set before the interruption are kept)"
            )
        result = ExecResult(
            output=reply.output,
            stdout=reply.stdout,
            stderr=reply.stderr,
            ok=reply.ok,
            error=error,
            timed_out=timed_out,
            duration_s=duration,
            cell_s=reply.cell_s,
            output_chars=reply.output_chars,
            truncated_chars=reply.truncated_chars,
            error_name=reply.error_name,
            error_value=reply.error_value,
        )
        if reply.stray_threads:
            n = reply.stray_threads
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
        # Broken again right after a replay: a replayed cell keeps corrupting the channel (e.g.
        # floods it with copies of its own reply), so replaying it once more would only repeat this.
        again = kind == "broken" and self._rebuilt_after_break
        if again:
            self.history.clear()
        self._rebuilt_after_break = kind == "broken"
        replayed, fresh_why = await self._rebuild()
        if again:
            fresh_why = "it broke again right after the replay of the earlier cells"
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
        await asyncio.to_thread(sandbox.remove_tree, self.workdir)
        self.pool._release(self)

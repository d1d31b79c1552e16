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
import os
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from datamind_ext.errors import UserError
from datamind_ext.interpreter import memcg, procs, sandbox, wire
from datamind_ext.interpreter.limits import Limits
from datamind_ext.interpreter.messages import (
    SessionSpec,
    SpareReady,
    StartFailed,
    decode,
)
from datamind_ext.interpreter.result import ExecResult, describe_exit
from datamind_ext.interpreter.session import (
    SESSION_START_TIMEOUT_S,
    ForkedProcess,
    Session,
)
from datamind_ext.interpreter.zygote import DEFAULT_PRELOAD
from datamind_ext.interpreter.zygote_client import (
    EXIT_WAIT_S,
    InterpreterError,
    ZygoteClient,
)

__all__ = ["ExecResult", "InterpreterError", "InterpreterPool", "MemoryReport", "Session", "describe_exit"]

DB_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def _root_parent() -> str | None:
    """Where the pool's temporary root goes: outside /tmp when sessions get a private /tmp (root),
    so that their writable /tmp never contains the pool's tree; else the usual temp dir."""
    if os.geteuid() == 0 and os.path.isdir("/var/tmp") and os.access("/var/tmp", os.W_OK):
        return "/var/tmp"
    return None


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
        self._spares: collections.deque[ForkedProcess] = collections.deque()
        self._refill_task: asyncio.Task | None = None
        self.preload = list(preload)
        self.isolate_network = isolate_network
        self.isolate_user = isolate_user
        self.start_timeout_s = start_timeout_s
        self.root: Path = Path()
        self.sessions: dict[int, Session] = {}
        self.evictions = 0
        self._zygote: ZygoteClient
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
        self._zygote = ZygoteClient(self.root, self.preload, self.isolate_network, self.isolate_user, n_uids)
        try:
            await self._zygote.start(self.start_timeout_s)
        except BaseException:
            sandbox.remove_tree(self.root)
            raise
        assert self._zygote.info is not None
        self.uid_mode = self._zygote.info.uid_mode
        self._uid_base = self._zygote.info.uid_base
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
        await asyncio.to_thread(sandbox.remove_tree, self.root)

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
        return [self._zygote_pid, *(self._zygote.info.helper_pids if self._zygote.info else [])]

    @property
    def spare_pids(self) -> list[int]:
        """Pre-forked processes waiting for a session."""
        return [p.pid for p in self._spares]

    @property
    def isolation(self) -> dict[str, str]:
        info = self._zygote.info
        return {**(info.isolation if info else {}), "disk_quota": self._quota_fact}

    async def _wait_helpers_gone(self) -> None:
        """The zygote's helpers (sweeper, janitor) exit right after it; wait so none outlives close()."""
        helpers = list(self._zygote.info.helper_pids if self._zygote.info else [])
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
                    await asyncio.to_thread(sandbox.remove_tree, session.workdir)
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

    async def _new_process(self, uid: int | None) -> ForkedProcess:
        """Fork a sandboxed process from the zygote and wait until it is ready to be assigned."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        spec = SessionSpec(uid=uid, gid=uid, pool_root=str(self.root), limits=self.limits)
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
            hello = decode(await asyncio.wait_for(wire.recv_async(reader), SESSION_START_TIMEOUT_S), SpareReady, StartFailed)
        except (TimeoutError, wire.WireClosed):
            hello = StartFailed(error=describe_exit(await self._zygote.kill(pid)))
        except wire.WireCorrupt as err:  # includes messages.Malformed
            hello = StartFailed(error=f"its first message was not one of the protocol's ({err})")
        if not isinstance(hello, SpareReady):
            writer.close()
            await self._zygote.kill(pid)
            raise InterpreterError(f"the session did not start: {hello.error}")
        return ForkedProcess(pid, uid, reader, writer)

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

        cg = self._zygote.info.memory_cgroup if self._started and self._zygote.info else None

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

"""The pool's side of the zygote: start it, ask it to fork, signal and kill sessions, hear of exits.

Control messages (:mod:`messages`) are :mod:`wire` frames, one per datagram of a SOCK_SEQPACKET
socket (why a datagram: see :mod:`wire`); sessions talk over stream sockets with the same frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from datamind_ext.interpreter import sandbox, wire
from datamind_ext.interpreter.messages import (
    ZYGOTE_TO_POOL,
    Exited,
    Kill,
    Message,
    SessionSpec,
    Shutdown,
    Signal,
    Spawn,
    Spawned,
    ZygoteReady,
    decode,
)

EXIT_WAIT_S = 10.0


class InterpreterError(RuntimeError):
    """The pool itself cannot work (the zygote failed to start or died)."""


class ZygoteClient:
    """Pool-side handle of the zygote process: requests, replies and exit events."""

    def __init__(self, root: Path, preload: Sequence[str], isolate_network: bool, isolate_user: bool, n_uids: int) -> None:
        self.root = root
        self.n_uids = n_uids
        self.isolate_user = isolate_user
        self.preload = list(preload)
        self.isolate_network = isolate_network
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.info: ZygoteReady | None = None  # set once started
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[Spawned]] = {}
        self._exits: dict[int, asyncio.Future[Exited | None]] = {}
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
                data = await loop.sock_recv(self.sock, wire.MAX_DATAGRAM_BYTES)
                if not data:
                    break
                msg = decode(wire.decode_datagram(data), *ZYGOTE_TO_POOL)
                if isinstance(msg, ZygoteReady):
                    if self._ready and not self._ready.done():
                        self._ready.set_result(msg)
                elif isinstance(msg, Exited):
                    fut = self._exits.setdefault(msg.pid, loop.create_future())
                    if not fut.done():
                        fut.set_result(msg)
                else:
                    self._exits.setdefault(msg.pid, loop.create_future())
                    reply = self._replies.pop(msg.id, None)
                    if reply is not None and not reply.done():
                        reply.set_result(msg)
        except (OSError, ValueError):  # wire.WireCorrupt is a ValueError: treat the zygote as gone
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

    async def _send(self, msg: Message, fds: Sequence[int] = ()) -> None:
        if self.dead or self.sock is None:
            raise InterpreterError("the interpreter zygote is not running")
        obj = msg.to_wire()
        while True:
            try:
                wire.send_datagram(self.sock, obj, fds)
                return
            except BlockingIOError:
                await asyncio.sleep(0.001)

    async def spawn(self, spec: SessionSpec, fd: int) -> int:
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._replies[rid] = fut
        await self._send(Spawn(id=rid, spec=spec), [fd])
        try:
            reply = await fut
        except EOFError as exc:
            raise InterpreterError(str(exc)) from None
        return reply.pid

    async def signal(self, pid: int, sig: int) -> None:
        with contextlib.suppress(InterpreterError, OSError):
            await self._send(Signal(pid=pid, sig=int(sig)))

    async def kill(self, pid: int) -> Exited | None:
        """Kill a session (and everything it left) and wait until the zygote has swept it."""
        with contextlib.suppress(InterpreterError, OSError):
            await self._send(Kill(pid=pid))
        return await self.wait_exit(pid, EXIT_WAIT_S)

    async def wait_exit(self, pid: int, timeout_s: float) -> Exited | None:
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
                wire.send_datagram(self.sock, Shutdown().to_wire())
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

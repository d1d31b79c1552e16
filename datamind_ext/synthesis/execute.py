"""Where synthesis runs code: the project's interpreter, behind a two-method interface.

Stages take an :class:`Executor` so the same code runs with an interpreter pool in-process, in
a Ray worker (one pool per worker process, see :func:`shared_executor`), or in tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from datamind_ext.protocol.observation import ExecutionLike


class Session(Protocol):
    async def run(self, code: str) -> ExecutionLike: ...


class Executor(Protocol):
    def session(self, files: list[str]) -> AbstractAsyncContextManager[Session]: ...

    async def aclose(self) -> None: ...


class InterpreterExecutor:
    """Sessions of the project's interpreter pool (forked, sandboxed, persistent), started lazily.

    The pool's sockets and semaphores belong to the event loop that first uses it, so an executor
    lives within one loop: stages close it with :func:`close_shared_executor` before their loop
    ends, and Ray workers keep one loop per process (see :mod:`runner`).
    """

    def __init__(self, timeout_s: float = 30.0, output_max_chars: int = 4096, max_concurrency: int | None = None) -> None:
        from datamind_ext.interpreter.limits import Limits
        from datamind_ext.interpreter.pool import InterpreterPool

        self.pool = InterpreterPool(limits=Limits(timeout_s=timeout_s, output_max_chars=output_max_chars),
                                    max_concurrency=max_concurrency)
        self._start_lock: asyncio.Lock | None = None
        self._closing: set[asyncio.Task] = set()

    async def _ensure_started(self) -> None:
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            await self.pool.start()  # idempotent

    @contextlib.asynccontextmanager
    async def session(self, files: list[str]) -> AsyncIterator[Session]:
        """A fresh session; it is closed in the background after use.

        Closing (waiting for the process to exit, removing its directory) takes ~0.1 s, longer
        than running a typical task program, so the caller does not wait for it; :meth:`aclose`
        does. The pool's session limit still bounds how many exist at once.
        """
        await self._ensure_started()
        s = await self.pool.open_session(files=files)
        try:
            yield s
        finally:
            task = asyncio.ensure_future(s.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        if self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)
        await self.pool.close()


_SHARED: InterpreterExecutor | None = None


def shared_executor(**kwargs: Any) -> InterpreterExecutor:
    """One executor per process and event loop (its warm zygote is costly to start)."""
    global _SHARED
    if _SHARED is None:
        _SHARED = InterpreterExecutor(**kwargs)
    return _SHARED


async def close_shared_executor() -> None:
    global _SHARED
    if _SHARED is not None:
        ex, _SHARED = _SHARED, None
        await ex.aclose()

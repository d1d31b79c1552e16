"""How the turn loop reaches the interpreter: one session per trajectory, always closed.

The loop needs only ``await session.run(code)`` returning an object with ``output``, ``ok``,
``error`` and ``timed_out`` (what :func:`datamind_ext.protocol.observation_text` reads). A
session factory is any callable ``files -> session-or-context-manager``; :func:`open_session`
accepts the shapes an interpreter may offer (async context manager, awaitable, plain object
with ``close``/``aclose``) so the loop's ``finally`` can always release it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from datamind_ext.protocol.observation import ExecutionLike


class CodeSession(Protocol):
    async def run(self, code: str) -> ExecutionLike: ...


SessionFactory = Callable[[Sequence[str]], Any]


@asynccontextmanager
async def open_session(factory: SessionFactory, files: Sequence[str]) -> AsyncIterator[CodeSession]:
    """Open one session with ``files``; closed on success, error and cancellation alike."""
    made = factory(list(files))
    if hasattr(made, "__aenter__"):
        async with made as session:
            yield session
        return
    session = await made if inspect.isawaitable(made) else made
    try:
        yield session
    finally:
        for name in ("aclose", "close"):
            fn = getattr(session, name, None)
            if fn is not None:
                res = fn()
                if inspect.isawaitable(res):
                    await res
                break


class PooledSessions:
    """A session factory over :class:`datamind_ext.interpreter.InterpreterPool` (imported on first use).

    The pool (a warm zygote) is started lazily on first use, once per event loop (its
    semaphores belong to the loop that started it): in verl's AgentLoopWorker that is one pool
    per worker process, shared by all its concurrent trajectories. Each call opens a fresh
    session with the given data files, closed when the episode ends.
    """

    def __init__(self, **pool_kwargs: Any) -> None:
        limits = pool_kwargs.pop("limits", None)
        self._limits = limits
        self._pool_kwargs = pool_kwargs
        self._pools: dict[int, Any] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def pool(self) -> Any:
        from datamind_ext.interpreter import InterpreterPool, Limits

        key = id(asyncio.get_running_loop())
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._pools:
                limits = self._limits if isinstance(self._limits, Limits) or self._limits is None else Limits(**self._limits)
                self._pools[key] = await InterpreterPool(limits=limits, **self._pool_kwargs).start()
        return self._pools[key]

    @asynccontextmanager
    async def _session(self, files: Sequence[str]) -> AsyncIterator[CodeSession]:
        pool = await self.pool()
        async with pool.session(files=list(files)) as session:
            yield session

    def __call__(self, files: Sequence[str]) -> Any:
        return self._session(files)

    async def aclose(self) -> None:
        """Close this event loop's pool (its zygote and any session left)."""
        pool = self._pools.pop(id(asyncio.get_running_loop()), None)
        if pool is not None:
            await pool.close()


def interpreter_factory(**pool_kwargs: Any) -> PooledSessions:
    """``PooledSessions(**pool_kwargs)``; ``limits`` may be a dict of :class:`Limits` fields."""
    return PooledSessions(**pool_kwargs)

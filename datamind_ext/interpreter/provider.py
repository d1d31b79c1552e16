"""Interpreter sessions for one owner: the one way stages get a session.

A :class:`SessionProvider` is made by the code that runs episodes (the verl agent loop's worker,
an evaluation run, a synthesis stage, ``datamind-ext rollout``) from an
:class:`~datamind_ext.interpreter.config.InterpreterConfig`, and closed by it. Its pool (a warm
zygote, costly to start) starts on the first session, once per event loop, since the pool's
sockets and semaphores belong to the loop that started it. Calling the provider with a list of
files returns an async context manager over a fresh session, so it is a turn-loop session
factory as it stands.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from datamind_ext.interpreter.config import InterpreterConfig
from datamind_ext.interpreter.pool import InterpreterPool, Session


class SessionProvider:
    """Fresh sessions of one pool per event loop, with the owner's settings.

    ``close_in_background``: a used session is closed in a background task (closing waits for
    the process to exit and removes its directory, ~0.1 s, longer than a typical synthesis
    program); :meth:`aclose` waits for those. The pool's ``max_sessions`` still bounds how many
    exist at once.
    """

    def __init__(self, config: InterpreterConfig | None = None, *, close_in_background: bool = False) -> None:
        self.config = config or InterpreterConfig()
        self.close_in_background = close_in_background
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, InterpreterPool] = weakref.WeakKeyDictionary()
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
        self._closing: set[asyncio.Task[Any]] = set()

    async def pool(self) -> InterpreterPool:
        """This event loop's pool, started on first use."""
        loop = asyncio.get_running_loop()
        lock = self._locks.setdefault(loop, asyncio.Lock())
        async with lock:
            pool = self._pools.get(loop)
            if pool is None:
                pool = await InterpreterPool(**self.config.pool_kwargs()).start()  # type: ignore[arg-type]
                self._pools[loop] = pool
        return pool

    @asynccontextmanager
    async def session(self, files: Sequence[str]) -> AsyncIterator[Session]:
        """A fresh session with ``files`` (visible by relative name), closed after use."""
        pool = await self.pool()
        if not self.close_in_background:
            async with pool.session(files=list(files)) as s:
                yield s
            return
        s = await pool.open_session(files=list(files))
        try:
            yield s
        finally:
            task = asyncio.ensure_future(s.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def __call__(self, files: Sequence[str]) -> Any:
        return self.session(files)

    async def aclose(self) -> None:
        """Close this event loop's pool (its zygote and every session left)."""
        if self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> SessionProvider:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

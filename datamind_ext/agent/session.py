"""How the turn loop reaches the interpreter: one session per trajectory, always closed.

The loop needs only ``await session.run(code)`` returning an object with ``output``, ``ok``,
``error`` and ``timed_out`` (what :func:`datamind_ext.protocol.observation_text` reads). A
session factory is any callable ``files -> session-or-context-manager``; :func:`open_session`
accepts the shapes an interpreter may offer (async context manager, awaitable, plain object
with ``close``/``aclose``) so the loop's ``finally`` can always release it. The project's
interpreter is reached through :class:`datamind_ext.interpreter.SessionProvider`, which is such
a factory; its owner (the caller running the episodes) closes it.
"""

from __future__ import annotations

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

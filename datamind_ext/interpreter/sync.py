"""A synchronous face of the pool for scripts and notebooks: an event loop in a helper thread."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from datamind_ext.interpreter.pool import InterpreterPool, MemoryReport, Session
from datamind_ext.interpreter.result import ExecResult

T = TypeVar("T")


class SyncSession:
    def __init__(self, owner: SyncInterpreterPool, session: Session) -> None:
        self._owner = owner
        self.session = session

    @property
    def workdir(self):
        return self.session.workdir

    def run(self, code: str, *, timeout_s: float | None = None) -> ExecResult:
        return self._owner._call(self.session.run(code, timeout_s=timeout_s))

    def close(self) -> None:
        self._owner._call(self.session.close())


class SyncInterpreterPool:
    """``with SyncInterpreterPool(limits=Limits()) as pool: with pool.session(files=[...]) as s: s.run(code)``."""

    def __init__(self, **pool_kwargs: Any) -> None:
        self._kwargs = pool_kwargs
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="interpreter-pool-loop", daemon=True)
        self.pool: InterpreterPool | None = None

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def start(self) -> SyncInterpreterPool:
        self._thread.start()

        async def make() -> InterpreterPool:
            return await InterpreterPool(**self._kwargs).start()

        self.pool = self._call(make())
        return self

    def close(self) -> None:
        if self.pool is not None:
            self._call(self.pool.close())
            self.pool = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()

    def __enter__(self) -> SyncInterpreterPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def session(self, files: Sequence[str | os.PathLike[str]] = (), *, db: str | None = None) -> Iterator[SyncSession]:
        assert self.pool is not None, "use `with SyncInterpreterPool(...) as pool:`"
        s = SyncSession(self, self._call(self.pool.open_session(files, db=db)))
        try:
            yield s
        finally:
            s.close()

    def memory_report(self) -> MemoryReport:
        assert self.pool is not None
        return self._call(self.pool.memory_report())

"""Where synthesis runs code: interpreter sessions from a :class:`SessionProvider`, one per config.

Stages hand top-level functions and their typed items (:mod:`~datamind_ext.synthesis.records`) to
:func:`~datamind_ext.synthesis.runner.map_unordered`, which runs them in-process or as Ray tasks,
so a function finds its sessions through
:func:`provider_for` with the stage's :class:`InterpreterConfig` (carried in the item): one
provider per process and config (its warm zygote is costly to start, and a Ray worker runs many
items), never one that ignores the settings it is asked for. The stage that started the work
closes this process's providers with :func:`close_providers` before its event loop ends; a Ray
worker's close when the worker exits (the zygote exits when its control socket closes).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from datamind_ext.interpreter.config import InterpreterConfig
from datamind_ext.interpreter.provider import SessionProvider
from datamind_ext.protocol.observation import ExecutionLike


class Session(Protocol):
    async def run(self, code: str) -> ExecutionLike: ...


class Executor(Protocol):
    """What synthesis needs of an interpreter (a :class:`SessionProvider` is one)."""

    def session(self, files: list[str]) -> AbstractAsyncContextManager[Session]: ...

    async def aclose(self) -> None: ...


_PROVIDERS: dict[str, SessionProvider] = {}


def provider_for(config: InterpreterConfig) -> SessionProvider:
    """This process's provider for ``config`` (sessions closed in the background: see SessionProvider)."""
    key = config.model_dump_json()
    if key not in _PROVIDERS:
        _PROVIDERS[key] = SessionProvider(config, close_in_background=True)
    return _PROVIDERS[key]


async def close_providers() -> None:
    """Close every provider this process made (from the event loop that used them)."""
    while _PROVIDERS:
        _, provider = _PROVIDERS.popitem()
        await provider.aclose()

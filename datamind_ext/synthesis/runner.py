"""Run per-item work concurrently, in-process (asyncio) or as Ray tasks, yielding as completed.

Stages hand a top-level async function and its items to :func:`map_unordered` and append each
result to their store the moment it arrives, so the order of completion never matters and a
kill loses only what was in flight. With ``backend="ray"`` every item is a Ray task (the
function runs in a worker under its own event loop, with one interpreter pool per worker
process), so a user with a cluster runs the same command against ``ray.init(address=...)``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")
Backend = Literal["local", "ray"]


def progress(total: int, desc: str) -> tqdm:
    """A per-stage progress bar on stderr (hidden when stderr is not a terminal)."""
    return tqdm(total=total, desc=desc, unit="item", file=sys.stderr, disable=None, dynamic_ncols=True)


async def _local(fn: Callable[[T], Awaitable[R]], items: Sequence[T], concurrency: int) -> AsyncIterator[R]:
    sem = asyncio.Semaphore(max(1, concurrency))

    async def one(x: T) -> R:
        async with sem:
            return await fn(x)

    tasks = [asyncio.ensure_future(one(x)) for x in items]
    try:
        for fut in asyncio.as_completed(tasks):
            yield await fut
    finally:
        for t in tasks:
            t.cancel()


_WORKER_LOOP: asyncio.AbstractEventLoop | None = None


def _ray_entry(fn: Callable[[Any], Awaitable[Any]], item: Any) -> Any:
    """Runs inside a Ray worker: one persistent event loop per worker process, so the worker's
    shared interpreter pool (bound to that loop) is reused by every task the worker runs."""
    global _WORKER_LOOP
    if _WORKER_LOOP is None:
        _WORKER_LOOP = asyncio.new_event_loop()
    return _WORKER_LOOP.run_until_complete(fn(item))


def ensure_ray(num_cpus: int | None = None, address: str | None = None) -> Any:
    import ray

    if not ray.is_initialized():
        if address:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus or 2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    return ray


async def _ray(fn: Callable[[T], Awaitable[R]], items: Sequence[T], concurrency: int) -> AsyncIterator[R]:
    ray = ensure_ray()
    remote = ray.remote(num_cpus=1)(_ray_entry)
    pending: list[Any] = []
    it = iter(items)
    window = max(1, concurrency)
    for x in it:
        pending.append(remote.remote(fn, x))
        if len(pending) >= window:
            break
    while pending:
        done, pending = await asyncio.to_thread(ray.wait, pending, num_returns=1)
        for ref in done:
            nxt = next(it, None)
            if nxt is not None:
                pending.append(remote.remote(fn, nxt))
            yield await asyncio.to_thread(ray.get, ref)


def map_unordered(fn: Callable[[T], Awaitable[R]], items: Sequence[T], backend: Backend = "local",
                  concurrency: int = 4) -> AsyncIterator[R]:
    """Apply ``fn`` to every item, at most ``concurrency`` at once; yield results as they complete."""
    if backend == "ray":
        return _ray(fn, items, concurrency)
    return _local(fn, items, concurrency)

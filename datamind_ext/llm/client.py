"""The one OpenAI-compatible chat client: bounded concurrency, retries, a usage ledger, a cache hook.

* At most ``max_concurrency`` requests in flight per event loop, optionally ``max_rpm`` starts
  per minute. HTTP sessions and semaphores are kept per event loop, so one client may be shared
  by threads and loops (verl calls sync scorers from a thread pool, async ones on its loop).
* 408/409/425/429/5xx, timeouts, connection errors and malformed replies are retried with
  exponential backoff and jitter (``Retry-After`` honoured); other 4xx fail at once. A request
  that fails for good raises :class:`LLMError`.
* Every attempt, retry, failure, cache hit and the replies' ``usage`` go into a
  :class:`UsageLedger` (synthesis accumulates it across resumed runs in ``out/ledger.json``).
* ``cache`` (any object with ``get(key) -> str | None`` and ``put(key, content)``) is asked
  before a request that names a ``cache_key``; a reply is stored when ``cache_if(content)`` holds.

aiohttp rather than httpx: at 64 concurrent requests httpx's async pool reached ~20 % of the
ideal throughput on a 2-core machine (about 10 ms of CPU per request), aiohttp ~92 %
(``benchmarks/synthesis_bench.py``, ``benchmarks/rewards_bench.py``).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from datamind_ext.llm.config import EndpointConfig

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class LLMError(RuntimeError):
    """A request that failed for good (non-retryable status, or retries exhausted)."""


class ReplyCache(Protocol):
    """What the client needs of a cache: reply text by key."""

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, content: str) -> None: ...


@dataclass
class UsageLedger:
    """Counts of one client's traffic; ``save_into`` adds them to a ledger file."""

    requests: int = 0
    retries: int = 0
    failures: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add_usage(self, usage: dict[str, Any] | None) -> None:
        usage = usage or {}
        self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.completion_tokens += int(usage.get("completion_tokens") or 0)

    def cost(self, cfg: EndpointConfig) -> float:
        return (self.prompt_tokens * cfg.cost_per_1k_prompt_tokens
                + self.completion_tokens * cfg.cost_per_1k_completion_tokens) / 1000

    def as_dict(self, cfg: EndpointConfig | None = None) -> dict[str, Any]:
        d: dict[str, Any] = asdict(self)
        if cfg is not None:
            d["cost"] = round(self.cost(cfg), 6)
        return d

    def save_into(self, path: Path, cfg: EndpointConfig) -> dict[str, Any]:
        """Add this run's counts to the ledger file (so resumed runs report the total)."""
        total = UsageLedger()
        if path.exists():
            old = json.loads(path.read_text(encoding="utf-8"))
            total = UsageLedger(**{k: int(old.get(k, 0)) for k in asdict(total)})
        for k, v in asdict(self).items():
            setattr(total, k, getattr(total, k) + v)
        out = total.as_dict(cfg)
        path.write_text(json.dumps(out, indent=2), encoding="utf-8")
        return out


@dataclass
class ChatResult:
    content: str
    finish_reason: str
    stop_reason: Any = None
    usage: dict[str, Any] = field(default_factory=dict)
    cached: bool = False


class RateLimiter:
    """Spaces request starts at least 60/max_rpm seconds apart (per event loop)."""

    def __init__(self, max_rpm: float) -> None:
        self.interval_s = 60.0 / max_rpm
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval_s
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass
class _LoopState:
    session: aiohttp.ClientSession
    semaphore: asyncio.Semaphore
    limiter: RateLimiter | None


class ChatClient:
    """``await client.chat(messages, ...)`` against one :class:`EndpointConfig`.

    ``api_key`` overrides the key read from ``config.api_key_env``. Close with :meth:`aclose`
    (or ``async with``) from each event loop that used it.
    """

    def __init__(self, config: EndpointConfig, *, ledger: UsageLedger | None = None, cache: ReplyCache | None = None,
                 api_key: str | None = None, seed: int = 0) -> None:
        self.config = config
        self.base_url = config.resolved_base_url()
        self.model = config.resolved_model()
        self.url = f"{self.base_url}/chat/completions"
        self.ledger = ledger if ledger is not None else UsageLedger()
        self.cache = cache
        key = api_key if api_key is not None else config.api_key()
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._rng = random.Random(seed)
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()
        self._states_lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.model)

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._states_lock:
            st = self._states.get(loop)
            if st is None:
                cfg = self.config
                st = _LoopState(
                    session=aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=cfg.max_concurrency),
                                                  timeout=aiohttp.ClientTimeout(total=cfg.timeout_s),
                                                  headers=self._headers),
                    semaphore=asyncio.Semaphore(cfg.max_concurrency),
                    limiter=RateLimiter(cfg.max_rpm) if cfg.max_rpm else None,
                )
                self._states[loop] = st
            return st

    async def chat(self, messages: Sequence[dict[str, str]], *, model: str | None = None,
                   stop: Sequence[str] | None = None, max_tokens: int | None = None,
                   temperature: float | None = None, seed: int | None = None,
                   cache_key: str | None = None, cache_if: Callable[[str], bool] | None = None,
                   **sampling: Any) -> ChatResult:
        """One completion; ``sampling`` (e.g. ``top_p``) goes into the request body as is."""
        if cache_key is not None and self.cache is not None:
            hit = self.cache.get(cache_key)
            if hit is not None:
                self.ledger.cache_hits += 1
                return ChatResult(hit, "stop", cached=True)
        if not self.configured:
            self.ledger.failures += 1
            raise LLMError("endpoint not configured (base_url/model)")
        body: dict[str, Any] = {"model": model or self.model, "messages": list(messages),
                                "max_tokens": max_tokens or self.config.max_tokens,
                                "temperature": self.config.temperature if temperature is None else temperature,
                                **sampling}
        if stop:
            body["stop"] = list(stop)
        if seed is not None:
            body["seed"] = seed
        result = await self._post(body)
        if cache_key is not None and self.cache is not None and (cache_if is None or cache_if(result.content)):
            self.cache.put(cache_key, result.content)
        return result

    async def _post(self, body: dict[str, Any]) -> ChatResult:
        cfg = self.config
        st = self._state()
        last = ""
        for attempt in range(cfg.max_retries + 1):
            retry_after: float | None = None
            if st.limiter is not None:
                await st.limiter.wait()
            async with st.semaphore:
                self.ledger.requests += 1
                try:
                    async with st.session.post(self.url, json=body) as resp:
                        status, text = resp.status, await resp.text()
                        retry_header = resp.headers.get("retry-after")
                except TimeoutError:
                    last = f"timeout after {cfg.timeout_s}s"
                except aiohttp.ClientError as err:
                    last = f"{type(err).__name__}: {err}"
                else:
                    if status == 200:
                        try:
                            data = json.loads(text)
                            choice = data["choices"][0]
                            content = choice["message"].get("content") or ""
                        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
                            last = f"malformed response: {type(err).__name__}"
                        else:
                            usage = data.get("usage") or {}
                            self.ledger.add_usage(usage)
                            return ChatResult(str(content), choice.get("finish_reason") or "stop",
                                              choice.get("stop_reason"), usage)
                    elif status in RETRY_STATUS:
                        last = f"HTTP {status}"
                        retry_after = _retry_after_s(retry_header)
                    else:
                        self.ledger.failures += 1
                        raise LLMError(f"HTTP {status} from {self.url}: {text[:200]}")
            if attempt < cfg.max_retries:
                self.ledger.retries += 1
                backoff = min(cfg.backoff_max_s, cfg.backoff_s * 2**attempt) * (0.5 + self._rng.random() / 2)
                await asyncio.sleep(min(cfg.backoff_max_s, retry_after if retry_after is not None else backoff))
        self.ledger.failures += 1
        raise LLMError(f"{self.url}: {last} (after {cfg.max_retries + 1} attempts)")

    async def aclose(self) -> None:
        """Close this event loop's HTTP session (others close when their loop is collected)."""
        loop = asyncio.get_running_loop()
        with self._states_lock:
            st = self._states.pop(loop, None)
        if st is not None:
            await st.session.close()

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None

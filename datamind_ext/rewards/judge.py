"""LLM judge for open answers: any OpenAI-compatible endpoint, cached, bounded, retried.

* Endpoint, model and key come from :class:`JudgeConfig`, else the environment
  (``DATAMIND_JUDGE_BASE_URL`` / ``OPENAI_BASE_URL``, ``DATAMIND_JUDGE_MODEL``, the variable named
  by ``api_key_env``); nothing is hard-coded (the reference pinned gpt-4o-mini).
* At most ``max_concurrency`` requests in flight per event loop, optionally ``max_rpm`` per minute.
* Retries with exponential backoff (and ``Retry-After``) on 429, 5xx, timeouts and connection
  errors; other 4xx are not retried.
* A persistent sqlite cache keyed by (question, reference, answer, judge model, prompt version):
  a rerun never pays twice. Only parsed verdicts are cached.
* A verdict is ``ok`` (score 0/1), ``unparsed`` (the judge replied without a verdict) or
  ``unreachable``; the caller applies the configured policy to the last two, never a silent 0.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import os
import random
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiohttp
from pydantic import Field

from datamind_ext.config import StrictModel
from datamind_ext.rewards.judge_prompt import PROMPT_VERSION, build_messages, parse_verdict

log = logging.getLogger("datamind_ext.rewards.judge")

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class JudgeConfig(StrictModel):
    """Where and how to ask the judge; empty fields are read from the environment."""

    base_url: str | None = None
    model: str | None = None
    #: Name of the environment variable holding the API key (the key itself never sits in a config).
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    max_tokens: int = Field(512, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    max_concurrency: int = Field(64, ge=1)
    #: Requests per minute per process (None: unlimited).
    max_rpm: float | None = Field(None, gt=0)
    #: sqlite file of cached verdicts (None: no persistent cache).
    cache_path: str | None = None
    #: When the judge cannot be reached (or never gives a verdict): use the rule-based matcher,
    #: mark the sample excluded, or raise.
    on_unreachable: Literal["fallback_rule", "exclude", "error"] = "fallback_rule"

    def resolved_base_url(self) -> str | None:
        url = self.base_url or os.environ.get("DATAMIND_JUDGE_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
        return url.rstrip("/") if url else None

    def resolved_model(self) -> str | None:
        return self.model or os.environ.get("DATAMIND_JUDGE_MODEL")


class JudgeUnavailableError(RuntimeError):
    """Raised when the judge is unreachable and the policy is ``error``."""


@dataclass(frozen=True)
class Verdict:
    """The judge's decision on one answer."""

    status: Literal["ok", "cached", "unparsed", "unreachable"]
    score: float | None  # 1.0 correct, 0.0 incorrect, None when no verdict
    detail: str = ""

    @property
    def decided(self) -> bool:
        return self.score is not None


def cache_key(question: str, reference: str, answer: str, model: str, prompt_version: str = PROMPT_VERSION) -> str:
    """The cache key: a hash of exactly (question, reference, answer, judge model, prompt version)."""
    payload = json.dumps([question, reference, answer, model, prompt_version], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8", "replace")).hexdigest()


class VerdictCache:
    """A sqlite file of verdicts, safe across threads and processes (WAL, busy timeout)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._con = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False, isolation_level=None)
        self._con.execute("pragma journal_mode=wal")
        # WAL + NORMAL: no fsync per verdict (a crash can lose the last few, which are re-asked).
        self._con.execute("pragma synchronous=normal")
        self._con.execute(
            "create table if not exists verdicts (key text primary key, score real not null, model text,"
            " prompt_version text, raw text, created_at real)"
        )
        self._mem: dict[str, float] = {}

    def get(self, key: str) -> float | None:
        if key in self._mem:
            return self._mem[key]
        with self._lock:
            row = self._con.execute("select score from verdicts where key = ?", (key,)).fetchone()
        if row is not None:
            self._mem[key] = float(row[0])
            return float(row[0])
        return None

    def put(self, key: str, score: float, *, model: str, raw: str) -> None:
        self._mem[key] = score
        with self._lock:
            self._con.execute(
                "insert or replace into verdicts values (?, ?, ?, ?, ?, ?)",
                (key, score, model, PROMPT_VERSION, raw[:4000], time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._con.execute("select count(*) from verdicts").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._con.close()


class _RateLimiter:
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
    client: aiohttp.ClientSession
    semaphore: asyncio.Semaphore
    limiter: _RateLimiter | None


class JudgeClient:
    """Asks an OpenAI-compatible model whether an answer matches the reference.

    Safe to share between event loops and threads: HTTP clients and the concurrency semaphore
    are kept per event loop (verl calls sync scorers from a thread pool, async ones on its loop).
    """

    def __init__(self, config: JudgeConfig | None = None) -> None:
        self.config = config or JudgeConfig()
        self.base_url = self.config.resolved_base_url()
        self.model = self.config.resolved_model()
        self.api_key = os.environ.get(self.config.api_key_env, "")
        self.cache = VerdictCache(self.config.cache_path) if self.config.cache_path else None
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()
        self._states_lock = threading.Lock()
        self.stats: dict[str, int] = {"requests": 0, "retries": 0, "cache_hits": 0, "unreachable": 0, "unparsed": 0}

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.model)

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._states_lock:
            st = self._states.get(loop)
            if st is None:
                headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
                st = _LoopState(
                    # aiohttp, not httpx: httpx's async pool costs ~10 ms of CPU per request at 64
                    # concurrent connections, which alone keeps the judge far below its ideal rate.
                    client=aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(limit=self.config.max_concurrency),
                        timeout=aiohttp.ClientTimeout(total=self.config.timeout_s),
                        headers=headers,
                    ),
                    semaphore=asyncio.Semaphore(self.config.max_concurrency),
                    limiter=_RateLimiter(self.config.max_rpm) if self.config.max_rpm else None,
                )
                self._states[loop] = st
            return st

    async def judge(self, question: str, reference: str, answer: str) -> Verdict:
        """The verdict on one answer (from the cache when possible); never raises."""
        if not self.configured:
            self.stats["unreachable"] += 1
            return Verdict("unreachable", None, "judge not configured (base_url/model)")
        key = cache_key(question, reference, answer, self.model or "")
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.stats["cache_hits"] += 1
                return Verdict("cached", hit)
        st = self._state()
        async with st.semaphore:
            text, err = await self._request(st, build_messages(question, reference, answer))
        if text is None:
            self.stats["unreachable"] += 1
            log.warning("judge unreachable at %s (model %s): %s", self.base_url, self.model, err)
            return Verdict("unreachable", None, err)
        score = parse_verdict(text)
        if score is None:
            self.stats["unparsed"] += 1
            log.warning("judge reply has no <verdict> tag: %.200r", text)
            return Verdict("unparsed", None, "no verdict in reply")
        if self.cache is not None:
            self.cache.put(key, score, model=self.model or "", raw=text)
        return Verdict("ok", score)

    def judge_sync(self, question: str, reference: str, answer: str) -> Verdict:
        """:meth:`judge` for synchronous callers (not from inside a running event loop)."""

        async def once() -> Verdict:
            try:
                return await self.judge(question, reference, answer)
            finally:
                await self._close_current_loop()

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(once())
        # Called from inside a running loop (a sync scorer used in async code): a private thread.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, once()).result()

    async def _request(self, st: _LoopState, messages: list[dict[str, str]]) -> tuple[str | None, str]:
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
        }
        url = f"{self.base_url}/chat/completions"
        err = ""
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                self.stats["retries"] += 1
            if st.limiter is not None:
                await st.limiter.wait()
            retry_after: float | None = None
            try:
                self.stats["requests"] += 1
                async with st.client.post(url, json=body) as resp:
                    if resp.status == 200:
                        try:
                            data = await resp.json(content_type=None)
                            return str(data["choices"][0]["message"]["content"] or ""), ""
                        except (ValueError, KeyError, IndexError, TypeError) as e:
                            err = f"malformed response: {type(e).__name__}"
                    elif resp.status in _RETRY_STATUS:
                        err = f"HTTP {resp.status}"
                        retry_after = _retry_after_s(resp.headers.get("retry-after"))
                    else:
                        return None, f"HTTP {resp.status}: {(await resp.text())[:200]}"
            except TimeoutError:
                err = f"timeout after {self.config.timeout_s}s"
            except aiohttp.ClientError as e:
                err = f"{type(e).__name__}: {e}"
            if attempt < self.config.max_retries:
                backoff = min(self.config.backoff_max_s, self.config.backoff_base_s * 2**attempt)
                delay = retry_after if retry_after is not None else backoff * (0.5 + random.random() / 2)
                await asyncio.sleep(min(delay, self.config.backoff_max_s))
        return None, f"{err} (after {self.config.max_retries + 1} attempts)"

    async def _close_current_loop(self) -> None:
        loop = asyncio.get_running_loop()
        with self._states_lock:
            st = self._states.pop(loop, None)
        if st is not None:
            await st.client.close()

    async def aclose(self) -> None:
        """Close this loop's HTTP client (others close when their loop is collected)."""
        await self._close_current_loop()

    async def __aenter__(self) -> JudgeClient:
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

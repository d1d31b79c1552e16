"""LLM judge for open answers: any OpenAI-compatible endpoint, cached, bounded, retried.

* Endpoint, model and key come from :class:`JudgeConfig` (an :class:`~datamind_ext.llm.EndpointConfig`),
  else the environment (``DATAMIND_JUDGE_BASE_URL`` / ``OPENAI_BASE_URL``, ``DATAMIND_JUDGE_MODEL``,
  the variable named by ``api_key_env``); nothing is hard-coded (the reference pinned gpt-4o-mini).
* Requests go through the project's one chat client (:class:`datamind_ext.llm.ChatClient`):
  ``max_concurrency`` in flight per event loop, optionally ``max_rpm`` per minute, retries with
  backoff (and ``Retry-After``) on 429, 5xx, timeouts and connection errors.
* A persistent sqlite cache keyed by (question, reference, answer, judge model, prompt version),
  plugged into the client's cache hook: a rerun never pays twice. Only parsed verdicts are cached.
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
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from datamind_ext.llm import ChatClient, EndpointConfig, LLMError
from datamind_ext.rewards.judge_prompt import PROMPT_VERSION, build_messages, parse_verdict

log = logging.getLogger("datamind_ext.rewards.judge")

class JudgeConfig(EndpointConfig):
    """Where and how to ask the judge; empty ``base_url``/``model`` are read from the environment."""

    temperature: float = 0.0
    max_tokens: int = Field(512, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    max_concurrency: int = Field(64, ge=1)
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

    def __init__(self, path: str | Path, model: str = "") -> None:
        self.path = Path(path)
        self.model = model
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
        self._mem: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        """The cached judge reply for ``key`` (the client's cache hook), or None."""
        if key in self._mem:
            return self._mem[key]
        with self._lock:
            row = self._con.execute("select raw from verdicts where key = ?", (key,)).fetchone()
        if row is not None and parse_verdict(row[0] or "") is not None:
            self._mem[key] = str(row[0])
            return self._mem[key]
        return None

    def put(self, key: str, content: str) -> None:
        """Store a reply that holds a verdict (the client stores only those, see ``cache_if``)."""
        score = parse_verdict(content)
        if score is None:
            return
        self._mem[key] = content
        with self._lock:
            self._con.execute(
                "insert or replace into verdicts values (?, ?, ?, ?, ?, ?)",
                (key, score, self.model, PROMPT_VERSION, content, time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._con.execute("select count(*) from verdicts").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._con.close()


class JudgeClient:
    """Asks an OpenAI-compatible model whether an answer matches the reference.

    Safe to share between event loops and threads, as its :class:`ChatClient` is (verl calls
    sync scorers from a thread pool, async ones on its loop).
    """

    def __init__(self, config: JudgeConfig | None = None) -> None:
        self.config = config or JudgeConfig()
        self.base_url = self.config.resolved_base_url()
        self.model = self.config.resolved_model()
        self.cache = VerdictCache(self.config.cache_path, self.model or "") if self.config.cache_path else None
        self.client = ChatClient(self.config, cache=self.cache)
        self._unreachable = 0
        self._unparsed = 0

    @property
    def configured(self) -> bool:
        return self.client.configured

    @property
    def stats(self) -> dict[str, int]:
        ledger = self.client.ledger
        return {"requests": ledger.requests, "retries": ledger.retries, "cache_hits": ledger.cache_hits,
                "unreachable": self._unreachable, "unparsed": self._unparsed}

    async def judge(self, question: str, reference: str, answer: str) -> Verdict:
        """The verdict on one answer (from the cache when possible); never raises."""
        if not self.configured:
            self._unreachable += 1
            return Verdict("unreachable", None, "judge not configured (base_url/model)")
        key = cache_key(question, reference, answer, self.model or "")
        try:
            reply = await self.client.chat(build_messages(question, reference, answer), cache_key=key,
                                           cache_if=lambda text: parse_verdict(text) is not None)
        except LLMError as err:
            self._unreachable += 1
            log.warning("judge unreachable at %s (model %s): %s", self.base_url, self.model, err)
            return Verdict("unreachable", None, str(err))
        score = parse_verdict(reply.content)
        if score is None:
            self._unparsed += 1
            log.warning("judge reply has no <verdict> tag: %.200r", reply.content)
            return Verdict("unparsed", None, "no verdict in reply")
        return Verdict("cached" if reply.cached else "ok", score)

    def judge_sync(self, question: str, reference: str, answer: str) -> Verdict:
        """:meth:`judge` for synchronous callers (not from inside a running event loop)."""

        async def once() -> Verdict:
            try:
                return await self.judge(question, reference, answer)
            finally:
                await self.client.aclose()

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(once())
        # Called from inside a running loop (a sync scorer used in async code): a private thread.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, once()).result()

    async def aclose(self) -> None:
        """Close this loop's HTTP session (others close when their loop is collected)."""
        await self.client.aclose()

    async def __aenter__(self) -> JudgeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

"""A small OpenAI-compatible chat client for synthesis: bounded concurrency, retries, a ledger.

Any ``/v1/chat/completions`` endpoint works (vLLM, SGLang, a hosted API, the project's local
test server). At most ``concurrency`` requests are in flight; 429, 5xx, timeouts and connection
errors are retried with exponential backoff and jitter (``Retry-After`` is honoured); other 4xx
fail at once. Every response's ``usage`` goes into a :class:`TokenLedger`, printed at the end of
a run and accumulated across resumed runs in ``out/ledger.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from datamind_ext.synthesis.config import LLMConfig

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class LLMError(RuntimeError):
    """A request that failed for good (non-retryable status, or retries exhausted)."""


@dataclass
class TokenLedger:
    requests: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add_usage(self, usage: dict[str, Any] | None) -> None:
        usage = usage or {}
        self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.completion_tokens += int(usage.get("completion_tokens") or 0)

    def cost(self, cfg: LLMConfig) -> float:
        return (self.prompt_tokens * cfg.cost_per_1k_prompt_tokens + self.completion_tokens * cfg.cost_per_1k_completion_tokens) / 1000

    def as_dict(self, cfg: LLMConfig | None = None) -> dict[str, Any]:
        d: dict[str, Any] = asdict(self)
        if cfg is not None:
            d["cost"] = round(self.cost(cfg), 6)
        return d

    def save_into(self, path: Path, cfg: LLMConfig) -> dict[str, Any]:
        """Add this run's counts to the ledger file (so resumed runs report the total)."""
        total = TokenLedger()
        if path.exists():
            old = json.loads(path.read_text(encoding="utf-8"))
            total = TokenLedger(**{k: old.get(k, 0) for k in asdict(total)})
        for k, v in asdict(self).items():
            setattr(total, k, getattr(total, k) + v)
        out = total.as_dict(cfg)
        path.write_text(json.dumps(out, indent=2), encoding="utf-8")
        return out


@dataclass
class ChatResult:
    content: str
    finish_reason: str
    stop_reason: Any
    usage: dict[str, Any]


class LLMClient:
    """aiohttp rather than httpx: at 64 concurrent requests httpx's connection pool reached
    ~20 % of the ideal throughput on a 2-core machine, aiohttp ~92 % (benchmarks/synthesis_bench.py)."""

    def __init__(self, cfg: LLMConfig, ledger: TokenLedger | None = None, seed: int = 0) -> None:
        self.cfg = cfg
        self.ledger = ledger or TokenLedger()
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        key = os.environ.get(cfg.api_key_env)
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._sem = asyncio.Semaphore(cfg.concurrency)
        self._rng = random.Random(seed)
        self._session: Any = None  # aiohttp.ClientSession, made inside the running loop

    def _client(self) -> Any:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.cfg.concurrency),
                timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s))
        return self._session

    async def chat(self, messages: list[dict[str, str]], *, model: str | None = None, stop: list[str] | None = None,
                   max_tokens: int | None = None, temperature: float | None = None, seed: int | None = None) -> ChatResult:
        import aiohttp

        body: dict[str, Any] = {"model": model or self.cfg.model, "messages": messages,
                                "max_tokens": max_tokens or self.cfg.max_tokens,
                                "temperature": self.cfg.temperature if temperature is None else temperature}
        if stop:
            body["stop"] = stop
        if seed is not None:
            body["seed"] = seed
        last = ""
        for attempt in range(self.cfg.max_retries + 1):
            retry_after: float | None = None
            async with self._sem:
                self.ledger.requests += 1
                try:
                    async with self._client().post(self.url, json=body, headers=self.headers) as resp:
                        status, text = resp.status, await resp.text()
                        retry_header = resp.headers.get("retry-after", "")
                except (TimeoutError, aiohttp.ClientError) as err:
                    last = f"{type(err).__name__}"
                else:
                    if status == 200:
                        try:
                            data = json.loads(text)
                            choice = data["choices"][0]
                            content = choice["message"].get("content") or ""
                        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                            last = "malformed response"
                        else:
                            self.ledger.add_usage(data.get("usage"))
                            return ChatResult(content, choice.get("finish_reason") or "stop",
                                              choice.get("stop_reason"), data.get("usage") or {})
                    elif status in RETRY_STATUS:
                        last = f"HTTP {status}"
                        try:
                            retry_after = float(retry_header)
                        except ValueError:
                            retry_after = None
                    else:
                        self.ledger.failures += 1
                        raise LLMError(f"HTTP {status} from {self.url}: {text[:200]}")
            if attempt < self.cfg.max_retries:
                self.ledger.retries += 1
                delay = retry_after if retry_after is not None else self.cfg.backoff_s * (2 ** attempt)
                await asyncio.sleep(delay * (1 + 0.25 * self._rng.random()))
        self.ledger.failures += 1
        raise LLMError(f"{self.url}: gave up after {self.cfg.max_retries + 1} attempts ({last})")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

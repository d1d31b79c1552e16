"""The one OpenAI-compatible chat client against the local test server: bounds, retries, ledger, cache hook."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from datamind_ext.llm import ChatClient, EndpointConfig, LLMError, UsageLedger
from datamind_ext.llm import client as client_mod
from datamind_ext.testing import OpenAITestServer

HI = [{"role": "user", "content": "hi"}]


def _cfg(url: str, **kw) -> EndpointConfig:
    return EndpointConfig(**{"base_url": url, "model": "m", "backoff_s": 0.0, "timeout_s": 5.0, **kw})


def test_bounded_concurrency_and_non_retryable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_TEST_KEY", "k")

    async def main(url: str) -> UsageLedger:
        ledger = UsageLedger()
        cfg = _cfg(url, max_concurrency=4, max_retries=1, api_key_env="LLM_TEST_KEY")
        async with ChatClient(cfg, ledger=ledger) as client:
            await asyncio.gather(*(client.chat(HI) for _ in range(12)))
        async with ChatClient(cfg, ledger=ledger, api_key="wrong") as bad:
            with pytest.raises(LLMError, match="HTTP 401"):
                await bad.chat(HI)
        return ledger

    with OpenAITestServer(["ok"], latency_s=0.05, api_key="k") as srv:
        ledger = asyncio.run(main(srv.base_url))
        assert srv.max_in_flight <= 4
    assert ledger.requests == 13 and ledger.failures == 1 and ledger.retries == 0


async def test_retries_then_gives_up_naming_the_last_error() -> None:
    with OpenAITestServer(["fine"], errors=[503, 429]) as srv:
        async with ChatClient(_cfg(srv.base_url, max_retries=2)) as client:
            r = await client.chat(HI, stop=["</code>"], top_p=0.5)
        assert r.content == "fine" and client.ledger.retries == 2 and srv.request_count == 3
        body = srv.requests[-1].body
        assert body["stop"] == ["</code>"] and body["top_p"] == 0.5 and body["model"] == "m"
    with OpenAITestServer(["never"], errors=[500] * 10) as srv:
        async with ChatClient(_cfg(srv.base_url, max_retries=1)) as client:
            with pytest.raises(LLMError, match=r"HTTP 500 \(after 2 attempts\)"):
                await client.chat(HI)
        assert client.ledger.failures == 1


async def test_cache_hook_asked_first_and_filled_only_when_accepted() -> None:
    class DictCache(dict):
        def put(self, key: str, content: str) -> None:
            self[key] = content

    cache = DictCache()
    with OpenAITestServer(["yes", "no", "yes"]) as srv:
        async with ChatClient(_cfg(srv.base_url), cache=cache) as client:
            first = await client.chat(HI, cache_key="a", cache_if=lambda text: text == "yes")
            again = await client.chat(HI, cache_key="a")
            rejected = await client.chat(HI, cache_key="b", cache_if=lambda text: text == "yes")
        assert (first.cached, again.cached, again.content) == (False, True, "yes")
        assert rejected.content == "no" and "b" not in cache
        assert srv.request_count == 2 and client.ledger.cache_hits == 1


def test_unconfigured_endpoint_fails_by_name() -> None:
    async def main() -> None:
        async with ChatClient(EndpointConfig()) as client:
            with pytest.raises(LLMError, match="not configured"):
                await client.chat(HI)

    asyncio.run(main())


def test_ledger_accumulates_across_runs(tmp_path: Path) -> None:
    cfg = EndpointConfig(cost_per_1k_prompt_tokens=1.0, cost_per_1k_completion_tokens=2.0)
    path = tmp_path / "ledger.json"
    for _ in range(2):
        ledger = UsageLedger(requests=3)
        ledger.add_usage({"prompt_tokens": 1000, "completion_tokens": 500})
        out = ledger.save_into(path, cfg)
    assert out == json.loads(path.read_text()) and out["requests"] == 6 and out["cost"] == pytest.approx(4.0)


async def test_rate_limit_spaces_request_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)

    monkeypatch.setattr(client_mod.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(client_mod.asyncio, "sleep", fake_sleep)
    limiter = client_mod.RateLimiter(max_rpm=120)  # one start every 0.5 s
    for _ in range(3):
        await limiter.wait()
    assert slept == pytest.approx([0.5, 1.0])  # 2nd and 3rd starts wait their turn (simulated clock)

"""The LLM judge against the local OpenAI-compatible test server: verdicts, retries, cache, policies."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from datamind_ext.rewards import JudgeClient, JudgeConfig, JudgeUnavailableError, ScoringConfig, score_sample_async
from datamind_ext.rewards.judge import cache_key
from datamind_ext.rewards.judge_prompt import PROMPT_VERSION, parse_verdict
from datamind_ext.testing import OpenAITestServer, Reply

CORRECT = "The numbers agree within 3%.\n<verdict>correct</verdict>"
WRONG = "Different category.\n<verdict>incorrect</verdict>"
RESP = "<code>\n```python\nprint(1)\n```\n</code>\n<interpreter>1</interpreter>\n<answer>{}</answer>"


def _cfg(srv: OpenAITestServer, tmp_path: Path | None = None, **kw) -> JudgeConfig:
    base = {"base_url": srv.base_url, "model": "judge-x", "backoff_s": 0.0, "timeout_s": 5.0}
    if tmp_path is not None:
        base["cache_path"] = str(tmp_path / "judge.sqlite")
    base.update(kw)
    return JudgeConfig(**base)


def test_parse_verdict() -> None:
    assert parse_verdict(CORRECT) == 1.0
    assert parse_verdict(WRONG) == 0.0
    assert parse_verdict("<verdict>correct</verdict> wait <verdict>incorrect</verdict>") == 0.0
    assert parse_verdict("looks right, score 1") is None
    assert parse_verdict("") is None


async def test_verdict_prompt_and_model_sent() -> None:
    with OpenAITestServer([CORRECT]) as srv:
        async with JudgeClient(_cfg(srv)) as client:
            v = await client.judge("What is the mean?", "29.14", "about 29.1")
        assert (v.status, v.score) == ("ok", 1.0)
        req = srv.requests[0]
        assert req.body["model"] == "judge-x" and req.body["temperature"] == 0.0
        assert "What is the mean?" in req.last_user_text and "about 29.1" in req.last_user_text


async def test_retries_on_429_and_5xx_then_succeeds() -> None:
    with OpenAITestServer([WRONG], errors=[429, 503, 500]) as srv:
        async with JudgeClient(_cfg(srv, max_retries=3)) as client:
            v = await client.judge("q", "a", "b")
        assert (v.status, v.score) == ("ok", 0.0)
        assert srv.request_count == 4 and client.stats["retries"] == 3


async def test_timeout_is_retried() -> None:
    with OpenAITestServer([Reply(CORRECT, delay_s=2.0), CORRECT]) as srv:
        async with JudgeClient(_cfg(srv, timeout_s=0.3, max_retries=1)) as client:
            v = await client.judge("q", "a", "b")
        assert v.score == 1.0 and srv.request_count == 2


async def test_client_errors_are_not_retried() -> None:
    with OpenAITestServer([CORRECT], api_key="right") as srv:
        async with JudgeClient(_cfg(srv, max_retries=3)) as client:
            v = await client.judge("q", "a", "b")  # no key sent
        assert v.status == "unreachable" and "401" in v.detail
        assert srv.request_count == 1


async def test_persistent_cache_keyed_by_all_five_parts(tmp_path: Path) -> None:
    with OpenAITestServer([CORRECT]) as srv:
        first = JudgeClient(_cfg(srv, tmp_path))
        assert (await first.judge("q", "ref", "ans")).status == "ok"
        first.cache.close()
        again = JudgeClient(_cfg(srv, tmp_path))  # a rerun: new process-like client, same file
        v = await again.judge("q", "ref", "ans")
        assert (v.status, v.score) == ("cached", 1.0)
        assert srv.request_count == 1
        await again.judge("q", "ref", "other answer")
        other_model = JudgeClient(_cfg(srv, tmp_path, model="judge-y"))
        await other_model.judge("q", "ref", "ans")
        assert srv.request_count == 3
    keys = {cache_key("q", "r", "a", "m"), cache_key("q2", "r", "a", "m"), cache_key("q", "r2", "a", "m"),
            cache_key("q", "r", "a2", "m"), cache_key("q", "r", "a", "m2"), cache_key("q", "r", "a", "m", "v0")}
    assert len(keys) == 6 and PROMPT_VERSION


async def test_concurrency_is_bounded() -> None:
    with OpenAITestServer([CORRECT], latency_s=0.05) as srv:
        async with JudgeClient(_cfg(srv, max_concurrency=3)) as client:
            results = await asyncio.gather(*(client.judge(f"q{i}", "a", "b") for i in range(12)))
        assert all(v.score == 1.0 for v in results)
        assert srv.max_in_flight <= 3


async def test_unreachable_policies_never_silently_zero(caplog) -> None:
    resp = RESP.format("29.14")
    with OpenAITestServer([CORRECT], errors=[503] * 100) as srv:
        judge = _cfg(srv, max_retries=1)
        extra = {"task_kind": "judged", "question": "mean?"}
        caplog.set_level(logging.WARNING)
        fb = await score_sample_async("x", resp, "29.14", extra, config=ScoringConfig(judge=judge))
        assert fb.values["score"] == 1.0 and fb.values["judge_unreachable"] == 1.0 and fb.values["judged"] == 0.0
        assert "fallback" in fb.reason and "judge" in caplog.text
        ex_cfg = ScoringConfig(judge=judge.model_copy(update={"on_unreachable": "exclude"}))
        ex = await score_sample_async("x", resp, "29.14", extra, config=ex_cfg)
        assert ex.values["excluded"] == 1.0 and ex.values["mask_out"] == 1.0 and ex.values["acc"] == 0.0
        err_cfg = ScoringConfig(judge=judge.model_copy(update={"on_unreachable": "error"}))
        with pytest.raises(JudgeUnavailableError):
            await score_sample_async("x", resp, "29.14", extra, config=err_cfg)


async def test_unparsed_reply_applies_policy_and_is_not_cached(tmp_path: Path) -> None:
    with OpenAITestServer(["I think it is right."]) as srv:
        cfg = ScoringConfig(judge=_cfg(srv, tmp_path, on_unreachable="exclude"))
        res = await score_sample_async("open_qa", RESP.format("x"), "y", {"task_kind": "judged"}, config=cfg)
        assert res.values["excluded"] == 1.0 and "unparsed" in res.reason
        assert len(JudgeClient(cfg.judge).cache) == 0


async def test_judged_reward_uses_verdict() -> None:
    with OpenAITestServer(lambda req: CORRECT if "<candidate>\nIt is Paris" in req.last_user_text else WRONG) as srv:
        cfg = ScoringConfig(judge=_cfg(srv))
        judged = {"task_kind": "judged"}
        ok = await score_sample_async("open_judge", RESP.format("It is Paris."), "Paris", judged, config=cfg)
        bad = await score_sample_async("open_judge", RESP.format("Rome."), "Paris", judged, config=cfg)
        assert (ok.values["score"], ok.values["judged"]) == (1.0, 1.0)
        assert bad.values["score"] == 0.0 and bad.values["judged"] == 1.0


def test_judge_sync_and_unconfigured(monkeypatch) -> None:
    monkeypatch.delenv("DATAMIND_JUDGE_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("DATAMIND_JUDGE_MODEL", raising=False)
    assert JudgeClient(JudgeConfig()).judge_sync("q", "a", "b").status == "unreachable"
    with OpenAITestServer([CORRECT]) as srv:
        monkeypatch.setenv("DATAMIND_JUDGE_BASE_URL", srv.base_url)
        monkeypatch.setenv("DATAMIND_JUDGE_MODEL", "env-model")
        v = JudgeClient(JudgeConfig(backoff_s=0.0)).judge_sync("q", "a", "b")
        assert v.score == 1.0 and srv.requests[0].body["model"] == "env-model"


async def test_judge_sync_inside_a_running_loop() -> None:
    with OpenAITestServer([CORRECT]) as srv:
        v = JudgeClient(_cfg(srv)).judge_sync("q", "a", "b")  # a sync scorer called from async code
        assert v.score == 1.0

"""The LLM path of synthesis against the local OpenAI-compatible test server (no model, no network).

The scripted "expert" writes real pandas code; the code runs in the interpreter and the answer
turn copies the printed value, so consistency, judging and the critique round are exercised on
real executions.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import pytest
from helpers.scripted_expert import expert_reply as _expert_reply
from helpers.scripted_expert import req_log

from datamind_ext.synthesis import pipeline
from datamind_ext.synthesis.config import LLMConfig, SynthConfig
from datamind_ext.testing.openai_server import OpenAITestServer

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples" / "files"




@pytest.fixture()
def one_file(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(SAMPLES / "retail_sales.csv", data)
    return data


def _cfg(data: Path, out: Path, url: str, **kw) -> SynthConfig:
    return SynthConfig(data=str(data), out=str(out), generator="llm", llm_tasks_per_table=2, min_depth=2, max_depth=3,
                       samples_per_task=3, llm=LLMConfig(base_url=url, model="expert", max_concurrency=8, backoff_s=0.01), **kw)


def test_llm_tasks_trajectories_consistency_and_export(one_file: Path, tmp_path: Path) -> None:
    req_log.clear()
    with OpenAITestServer(_expert_reply, errors=[429, 503]) as srv:
        cfg = _cfg(one_file, tmp_path / "out", srv.base_url)
        asyncio.run(pipeline.run_profile(cfg))
        tasks = asyncio.run(pipeline.run_tasks(cfg))
        assert tasks == {"ok": 2}
        recs = [json.loads(x) for x in (tmp_path / "out" / "tasks.jsonl").read_text().splitlines()]
        for r in recs:
            chain = r["spec"]["chain"]
            assert 2 <= len(chain) == r["spec"]["depth"] <= 3  # composed: one generator call per level
        trajs = asyncio.run(pipeline.run_trajectories(cfg))
        assert trajs["ok"] == 6  # N=3 per task, all executed for real
        report = pipeline.run_filter(cfg)
        assert report["kept"] == 2 and report["dropped"] == 0
        kept = pipeline.load_kept(cfg)
        assert all(t.ground_truth == "10.08" or re.fullmatch(r"\d+\.\d+", t.ground_truth) for t in kept)
        # the stored trajectory trains without the sampling-time workflow hint
        assert all("Suggested workflow" not in t.messages[0].content for t in kept)
        # the sampling request did carry it (knowledge-augmented sampling)
        assert any("Suggested workflow" in (r.messages[0]["content"]) for r in srv.requests if r.messages)
        ledger = pipeline.ledger_summary(cfg)
        assert ledger["retries"] >= 2 and ledger["completion_tokens"] > 0
        summary = pipeline.run_export(cfg)
        assert summary["rl_rows"] == 2 and summary["sft_written"] == 2
        n_requests = srv.request_count
        # resume: everything is stored, a rerun makes no request
        asyncio.run(pipeline.run_tasks(cfg))
        asyncio.run(pipeline.run_trajectories(cfg))
        assert [r.messages[0]["content"][:40] for r in srv.requests[n_requests:]] == []


def test_inconsistent_answers_get_critique_then_dropped_with_reason(one_file: Path, tmp_path: Path) -> None:
    req_log.clear()
    with OpenAITestServer(lambda r: _expert_reply(r, wrong_every=3)) as srv:
        cfg = _cfg(one_file, tmp_path / "out", srv.base_url, critique_rounds=1)
        cfg.llm_tasks_per_table = 1
        asyncio.run(pipeline.run_profile(cfg))
        asyncio.run(pipeline.run_tasks(cfg))
        asyncio.run(pipeline.run_trajectories(cfg))
        # the second round's user turn carries the critique
        assert any("Note from a reviewer" in r.last_user_text for r in srv.requests)
        report = pipeline.run_filter(cfg)
    assert report["kept"] == 0
    assert report["dropped_by_reason"] == {"inconsistent": 1}

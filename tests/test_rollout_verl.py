"""The agent loop through verl 0.9.1's real agent-loop code (AgentLoopWorker.generate_sequences:
registry lookup, hydra instantiation, padding, postprocess) with the real sandboxed interpreter.

The server manager here is a scripted token server: it plays fixed assistant texts token by
token and honours ``max_tokens``, ``stop`` and ``stop_token_ids`` like vLLM does, so the
tests see whether the loop asks the server to stop (the scripts continue past ``</code>``).
The tiny model through Ray and the ``datamind_hf`` backend is in ``test_rollout_cpu_backend.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.verl_batches import compose_config, make_batch

import datamind_ext.integrations.verl  # noqa: F401
from datamind_ext.interpreter import SessionProvider

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples" / "files"

CSV_TURNS = [
    ("<think>load</think><code>\n```python\nimport pandas as pd\ndf = pd.read_csv('retail_sales.csv')\n"
     "print(len(df))\n```\n</code>AFTER-STOP-1"),
    "<think>again</think><code>\n```python\nprint(len(df) * 2)\n```\n</code>AFTER-STOP-2",
    "<answer>done</answer>AFTER-ANSWER",
]
DB_TURNS = [
    "<code>\n```python\nget_db_info()\n```\n</code>",
    "<code>\n```python\nexecute_sql(sql=\"SELECT COUNT(*) AS n FROM authors\", output_path=\"result.csv\")\n```\n</code>",
    "<answer>The result is saved in the CSV file named 'result.csv'.</answer>",
]
LOOP_TURNS = ["<code>print('again')</code>"] * 20
FAIL = "FAIL"


class ScriptedServer:
    """A server-manager-like object: ``generate(request_id, prompt_ids, sampling_params)``."""

    def __init__(self, tokenizer: Any, scripts: dict[str, list[str] | str]) -> None:
        self.tok, self.scripts = tokenizer, scripts
        self.calls: list[dict[str, Any]] = []

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any], **kw: Any):
        from verl.workers.rollout.replica import TokenOutput

        text = self.tok.decode(prompt_ids)
        key = next(k for k in self.scripts if k in text)
        self.calls.append({"key": key, "request_id": request_id, "params": dict(sampling_params)})
        script = self.scripts[key]
        if script == FAIL:
            raise ConnectionError("scripted server failure")
        turn = text.count("<|im_start|>assistant") - 1
        ids = self.tok.encode(script[turn], add_special_tokens=False)
        stops = sampling_params.get("stop") or []
        stop_ids = set(sampling_params.get("stop_token_ids") or [])
        out: list[int] = []
        for t in ids[: sampling_params["max_tokens"]]:
            out.append(t)
            if t in stop_ids or any(self.tok.decode(out).endswith(s) for s in stops):
                break
        return TokenOutput(token_ids=out, log_probs=[-0.5] * len(out), stop_reason="completed", extra_fields={})


@pytest.fixture()
async def sessions():
    from datamind_ext.integrations.verl.agent_loop import DataMindAgentLoop

    factory = SessionProvider()
    DataMindAgentLoop.session_factory = factory
    yield factory
    pool = await factory.pool()
    assert not pool.sessions, "a trajectory's interpreter session was left open"
    await factory.aclose()
    DataMindAgentLoop.session_factory = None
    assert pool.processes() == [], "interpreter processes left after the pool closed"


async def test_agent_loop_through_verl_worker(tiny_model_path, tiny_tokenizer, sessions, tmp_path):
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

    csv = tmp_path / "retail_sales.csv"
    shutil.copy(SAMPLES / "retail_sales.csv", csv)
    db = str(SAMPLES / "library.sqlite")
    rows = [
        {"question": "Q-csv how many rows?", "files": [str(csv)]},
        {"question": "Q-db how many authors?", "files": [db], "agent_name": "datamind_code_agent"},
        {"question": "Q-loop never answers", "files": [str(csv)]},
        {"question": "Q-fail server breaks", "files": [str(csv)]},
    ]
    server = ScriptedServer(tiny_tokenizer, {"Q-csv": CSV_TURNS, "Q-db": DB_TURNS, "Q-loop": LOOP_TURNS, "Q-fail": FAIL})
    cfg = compose_config(tiny_model_path, "+datamind.agent.max_turns=4", "+datamind.agent.max_tokens_per_turn=200")
    worker = AgentLoopWorker(cfg, llm_client=server)
    out = await worker.generate_sequences(make_batch(rows))

    resp, mask, prompts = out.batch["responses"], out.batch["response_mask"], out.batch["prompts"]
    assert resp.shape == (4, 3072) and prompts.shape == (4, 1024)
    nt = out.non_tensor_batch
    assert list(nt["dm_void"]) == [0, 0, 1, 1] and list(nt["dm_failed"]) == [0, 0, 0, 1]
    assert list(nt["dm_code_cells"]) == [2, 2, 3, 0] and list(nt["dm_turns"]) == [3, 3, 4, 0]
    assert list(nt["dm_cells_errored"]) == [0, 0, 0, 0]
    assert all(v > 0 for v in nt["dm_interpreter_s"][:3])

    # Stops were sent to the server, with a per-turn cap, and one request id per trajectory.
    first = server.calls[0]["params"]
    assert first["stop"] == ["</code>", "</answer>"] and first["max_tokens"] == 200
    assert set(tiny_tokenizer.convert_tokens_to_ids(["</code>", "</answer>"])) <= set(first["stop_token_ids"])
    assert len({c["request_id"] for c in server.calls if c["key"] == "Q-csv"}) == 1

    for i in range(2):  # the answered trajectories: tokens are the chat template's, masks exact
        n = int(out.batch["attention_mask"][i, 1024:].sum())
        ids = resp[i, :n].tolist()
        m = mask[i, :n].tolist()
        text = tiny_tokenizer.decode(ids)
        assert "AFTER-STOP" not in text and "AFTER-ANSWER" not in text
        trained = tiny_tokenizer.decode([t for t, k in zip(ids, m) if k])
        script = CSV_TURNS if i == 0 else DB_TURNS
        assert trained == "".join(s.split("</code>")[0] + "</code>" if "</code>" in s else s.split("</answer>")[0] + "</answer>"
                                  for s in script)
        prompt_ids = [t for t in prompts[i].tolist() if t != tiny_tokenizer.pad_token_id]
        msgs = _messages_from_text(tiny_tokenizer.decode(prompt_ids + ids))
        full = tiny_tokenizer.apply_chat_template(msgs, tokenize=True, return_dict=False)
        assert prompt_ids + ids == list(full)[: len(prompt_ids) + n]
        # Observation turns are masked; the model's tokens carry its log-probs.
        assert int(sum(m)) < n
        lp = out.batch["rollout_log_probs"][i, :n].tolist()
        assert all((v == -0.5) == bool(k) for v, k in zip(lp, m))

    csv_text = tiny_tokenizer.decode(resp[0][mask[0] == 0].tolist())
    assert "The code ran successfully:" in csv_text and "<interpreter>" in csv_text
    db_text = tiny_tokenizer.decode(resp[1][mask[1] == 0].tolist())
    assert "authors" in db_text and "result.csv" in db_text
    # The failed row is in the batch, empty and fully masked; the void row keeps its tokens.
    assert int(mask[3].sum()) == 0 and int(mask[2].sum()) > 0
    assert "Data files" in tiny_tokenizer.decode(prompts[0].tolist())  # our system prompt (file task)
    assert "get_db_info()" in tiny_tokenizer.decode(prompts[1].tolist())  # database task prompt


def test_an_episode_that_failed_before_its_first_token_still_takes_a_reward():
    """verl's v1 loop writes the reward on the last response token: an empty response raised
    IndexError there and failed the whole step (seen when a row's data file was missing)."""
    from datamind_ext.agent.loop import Episode
    from datamind_ext.integrations.verl.agent_loop import episode_output

    failed = Episode(messages=[{"role": "user", "content": "q"}], prompt_ids=[5, 6, 7], void=True,
                     error="UserError: data file not found: /gone/sales.csv")
    out = episode_output(failed, with_logprobs=True, filler_token_id=0)
    row = out.model_copy(update={"reward_score": -0.1}).as_dict()
    assert row["responses"].tolist() == [0] and row["response_mask"].tolist() == [0]
    assert row["rm_scores"].tolist() == [pytest.approx(-0.1)] and row["rollout_log_probs"].tolist() == [0.0]
    ok = Episode(messages=[], prompt_ids=[5], response_ids=[8, 9], response_mask=[1, 1], response_logprobs=[-1.0, -2.0])
    assert episode_output(ok, with_logprobs=False, filler_token_id=0).response_ids == [8, 9]


def _messages_from_text(text: str) -> list[dict[str, str]]:
    """Split ChatML text back into messages (the last, unterminated turn included)."""
    msgs = []
    for chunk in text.split("<|im_start|>")[1:]:
        role, _, rest = chunk.partition("\n")
        msgs.append({"role": role, "content": rest.split("<|im_end|>")[0]})
    return msgs


async def test_observation_budget_and_forced_answer_through_verl(tiny_model_path, tiny_tokenizer, sessions, tmp_path):
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

    turns = ["<code>print('x' * 5000)</code>", "<answer>ok</answer>"]
    server = ScriptedServer(tiny_tokenizer, {"Q-long": turns})
    cfg = compose_config(tiny_model_path, "+datamind.agent.max_turns=2", "+datamind.agent.max_observation_chars=300",
                         "+datamind.agent.force_final_answer=true")
    out = await AgentLoopWorker(cfg, llm_client=server).generate_sequences(
        make_batch([{"question": "Q-long", "files": []}]))
    nt = out.non_tensor_batch
    assert nt["dm_obs_chars_cut"][0] > 4000 and nt["dm_void"][0] == 0
    obs = tiny_tokenizer.decode(out.batch["responses"][0][out.batch["response_mask"][0] == 0].tolist())
    assert "characters cut" in obs and "final answer" in obs


def test_unknown_budget_key_is_a_user_error(tiny_model_path, tiny_tokenizer):
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

    cfg = compose_config(tiny_model_path, "+datamind.agent.max_turn=3")
    worker = AgentLoopWorker(cfg, llm_client=ScriptedServer(tiny_tokenizer, {}))
    # hydra wraps our UserError in its InstantiationException; the message names the key.
    with pytest.raises(Exception, match="datamind.agent: unknown key 'max_turn'"):
        import asyncio

        asyncio.run(worker.generate_sequences(make_batch([{"question": "Q", "files": []}])))


def test_registered_in_verl():
    from verl.experimental.agent_loop.agent_loop import _agent_loop_registry
    from verl.workers.rollout.base import get_rollout_class
    from verl.workers.rollout.replica import get_rollout_replica_class

    from datamind_ext.integrations.verl.registration import FAILURES, register_all

    register_all()
    assert not {k: v for k, v in FAILURES.items() if "agent_loop" in k or "cpu_rollout" in k}
    assert _agent_loop_registry["datamind_code_agent"]["_target_"].endswith("agent_loop.DataMindAgentLoop")
    assert get_rollout_replica_class("datamind_hf").__name__ == "HFReplica"
    assert get_rollout_class("datamind_hf", "async").__name__ == "HFServerAdapter"

"""The CPU generation engine and its HTTP server (tiny random model)."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
import torch

from datamind_ext.generation import HFGenerationEngine, SamplingSpec
from datamind_ext.generation.server import BackgroundServer

GREEDY = {"temperature": 0, "max_tokens": 24}


@pytest.fixture(scope="module")
def engine(tiny_model_path):
    e = HFGenerationEngine(tiny_model_path, max_batch_size=16)
    yield e
    e.close()


def prompts(tok) -> list[list[int]]:
    texts = ["What is the mean price?", "Load sales.csv", "How many rows have qty greater than 3 in the file?"]
    return [tok.apply_chat_template([{"role": "user", "content": t}], tokenize=True, add_generation_prompt=True,
                                    return_dict=False) for t in texts]


async def test_batched_greedy_equals_one_at_a_time_and_logprobs_match_forward(engine):
    ps = prompts(engine.tokenizer)
    single = [engine.generate_blocking(p, GREEDY) for p in ps]
    batches_before = engine.batches_run
    batched = await asyncio.gather(*[engine.generate(p, GREEDY) for p in ps])
    assert engine.batches_run - batches_before < len(ps)  # the requests were decoded together
    for s, b in zip(single, batched):
        assert s.token_ids == b.token_ids and len(b.token_ids) == 24 and b.finish_reason == "length"
        assert b.log_probs == pytest.approx(s.log_probs, abs=1e-4)
    # Log-probs are the model's own, recomputed with one teacher-forced forward pass.
    p, g = ps[2], batched[2]
    with torch.no_grad():
        logits = engine.model(torch.tensor([p + g.token_ids])).logits[0].float()
    lp = torch.log_softmax(logits[len(p) - 1 : -1], dim=-1)
    ref = lp[torch.arange(len(g.token_ids)), torch.tensor(g.token_ids)]
    assert g.log_probs == pytest.approx(ref.tolist(), abs=1e-3)


async def test_stops_on_server_at_stop_string_and_stop_token(engine):
    p = prompts(engine.tokenizer)[0]
    seeded = {"temperature": 1.0, "seed": 7, "max_tokens": 30}
    full = (await engine.generate(p, seeded)).token_ids
    assert len(set(full)) > 5  # a seeded sample, varied enough to pick stops from
    stop = engine.tokenizer.decode(full[6:9])
    g = await engine.generate(p, {**seeded, "stop": [stop]})
    assert g.finish_reason == "stop" and g.stop_matched == stop
    assert full[: len(g.token_ids)] == g.token_ids  # nothing generated past the stop, nothing cut
    assert stop in engine.tokenizer.decode(g.token_ids)
    assert stop not in engine.tokenizer.decode(g.token_ids[:-1])
    tid = full[5]
    g2 = await engine.generate(p, {**seeded, "stop_token_ids": [tid]})
    assert g2.token_ids[-1] == tid and tid not in g2.token_ids[:-1] and g2.finish_reason == "stop"


async def test_sampling_respects_max_tokens_and_batches_many(engine):
    p = prompts(engine.tokenizer)[1]
    gens = await asyncio.gather(*[engine.generate(p, {"temperature": 1.0, "top_p": 0.9, "top_k": 50, "max_tokens": 7})
                                  for _ in range(12)])
    assert all(len(g.token_ids) <= 7 for g in gens) and engine.max_batch_seen >= 6
    assert all(lp <= 0 for g in gens for lp in g.log_probs)


def test_sampling_spec_accepts_vllm_style_params():
    s = SamplingSpec.from_params({"max_new_tokens": 5, "temperature": 0, "stop": "</code>", "logprobs": False,
                                  "repetition_penalty": 1.0, "stop_token_ids": [7]})
    assert (s.max_tokens, s.greedy, s.stop, s.logprobs, s.stop_token_ids) == (5, True, ("</code>",), False, (7,))


def test_load_weights_changes_what_is_generated(tiny_model_path):
    e = HFGenerationEngine(tiny_model_path)
    try:
        p = prompts(e.tokenizer)[0]
        before = e.generate_blocking(p, GREEDY)
        name, param = next((n, t) for n, t in e.model.named_parameters() if "lm_head" in n or "embed" in n)
        assert e.load_weights([(name, torch.randn_like(param) * 5)]) == 1
        after = e.generate_blocking(p, GREEDY)
        assert after.log_probs != pytest.approx(before.log_probs, abs=1e-3)
    finally:
        e.close()


def test_http_server_speaks_openai_chat_and_token_routes(engine):
    with BackgroundServer(engine) as srv, httpx.Client(timeout=60) as client:
        assert client.get(f"{srv.base_url}/models").json()["data"][0]["object"] == "model"
        body = {"model": "tiny", "messages": [{"role": "user", "content": "What is the mean price?"}],
                "max_tokens": 30, "temperature": 1.0, "seed": 11}
        full = client.post(f"{srv.base_url}/chat/completions", json=body).json()
        text = full["choices"][0]["message"]["content"]
        assert full["object"] == "chat.completion" and full["usage"]["completion_tokens"] == 30
        assert full["choices"][0]["finish_reason"] == "length"
        stop = re.findall(r"[A-Za-z]{3,}", text)[1][:3]  # plain letters: no partial UTF-8 bytes
        cut = client.post(f"{srv.base_url}/chat/completions", json={**body, "stop": [stop]}).json()["choices"][0]
        assert cut["finish_reason"] == "stop" and cut["stop_reason"] == stop
        assert stop not in cut["message"]["content"] and text.startswith(cut["message"]["content"])
        ids = prompts(engine.tokenizer)[0]
        tok = client.post(f"http://{srv.host}:{srv.port}/generate",
                          json={"prompt_ids": ids, "sampling_params": GREEDY}).json()
        assert tok["token_ids"] == engine.generate_blocking(ids, GREEDY).token_ids
        assert client.post(f"{srv.base_url}/chat/completions", json={"messages": []}).status_code == 400

"""The SFT stage's core: trajectory checks, the LLaMA-Factory export and its report, the
``datamind:`` block, and the token-weighted causal-LM loss (no LLaMA-Factory import here)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers.loss.loss_utils import ForCausalLMLoss

from datamind_ext.errors import UserError
from datamind_ext.protocol import Message, Trajectory, observation_message, render_messages
from datamind_ext.sft import export_llamafactory_dataset, trajectory_problems
from datamind_ext.sft.causal_lm_loss import make_loss_function, token_weighted_causal_lm_loss
from datamind_ext.sft.config import DatamindSFTConfig, split_sft_config
from datamind_ext.sft.samples import sample_trajectories, sample_trajectory


def _with(traj: Trajectory, tid: str, messages: list[Message]) -> Trajectory:
    return traj.model_copy(update={"id": tid, "messages": messages})


def _malformed() -> dict[str, Trajectory]:
    base = sample_trajectory(0)
    m = base.messages  # system, user, asst, obs, asst, obs, asst(answer)
    empty_code = Message(role="assistant", content="<think>x</think>\n<code>\n```python\n\n```\n</code>")
    return {
        "swapped": _with(base, "swapped", [m[0], m[1], m[3], m[2], *m[4:]]),
        "no_answer": _with(base, "no_answer", [*m[:-1], Message(role="assistant", content="<think>done</think>")]),
        "ends_on_obs": _with(base, "ends_on_obs", m[:-1]),
        "empty_code": _with(base, "empty_code", [*m[:2], empty_code, *m[3:]]),
        "empty_system": _with(base, "empty_system", [Message(role="system", content=""), *m[1:]]),
        "two_obs": _with(base, "two_obs", [*m[:4], observation_message("again"), *m[4:]]),
    }


def test_trajectory_problems_name_each_defect():
    assert trajectory_problems(sample_trajectory(3)) == []
    found = {tid: trajectory_problems(t) for tid, t in _malformed().items()}
    assert all(found.values()), found
    assert any(p.startswith("roles_out_of_order") for p in found["swapped"])
    assert "missing_answer" in found["no_answer"]
    assert "ends_without_assistant_turn" in found["ends_on_obs"]
    assert "empty_code" in found["empty_code"]
    assert "empty_system_prompt" in found["empty_system"]
    assert any(p.startswith("roles_out_of_order") for p in found["two_obs"])


def test_export_writes_llamafactory_sharegpt_and_reports_every_skip(tmp_path, tiny_tokenizer):
    good = sample_trajectories(3)
    bad = list(_malformed().values())
    long_one = sample_trajectory(7, n_code_turns=12)
    items = [*good, *bad, long_one, good[0], {"id": "broken", "messages": [{"role": "tool", "content": "x"}]}]
    max_tokens = max(len(render_messages(tiny_tokenizer, t.messages)) for t in good)
    assert len(render_messages(tiny_tokenizer, long_one.messages)) > max_tokens

    report = export_llamafactory_dataset(items, tmp_path, name="dm", tokenizer=tiny_tokenizer, max_tokens=max_tokens)

    assert report.n_input == len(items)
    assert report.n_written == 3
    assert set(report.too_long) == {long_one.id}
    assert set(report.malformed) == {*(t.id for t in bad), good[0].id, "broken"}
    assert report.malformed[good[0].id] == ["duplicate_id"]
    assert report.malformed["broken"][0].startswith("invalid_record")
    counts = report.reason_counts()
    assert counts["too_long"] == 1 and counts["duplicate_id"] == 1 and counts["missing_answer"] == 1
    assert report.n_written + report.n_skipped == report.n_input
    text = report.summary()
    assert "exported 3/12" in text and "skipped 8 malformed" in text and f"dropped 1 longer than {max_tokens}" in text

    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info == {"dm": {"file_name": "dm.jsonl", "formatting": "sharegpt", "columns": {"messages": "messages"},
                           "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                                    "assistant_tag": "assistant", "system_tag": "system"}}}
    rows = [json.loads(line) for line in (tmp_path / "dm.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [t.id for t in good]
    assert rows[0]["messages"] == good[0].to_openai()
    saved = json.loads((tmp_path / "export_report.json").read_text())
    assert saved["n_written"] == 3 and saved["max_tokens"] == max_tokens and saved["reason_counts"] == counts
    assert report.total_trained_tokens == sum(render_messages(tiny_tokenizer, t.messages).n_trained for t in good)


def test_export_keeps_other_dataset_info_entries(tmp_path):
    (tmp_path / "dataset_info.json").write_text(json.dumps({"other": {"file_name": "o.json"}}))
    export_llamafactory_dataset(sample_trajectories(1), tmp_path, name="dm")
    assert set(json.loads((tmp_path / "dataset_info.json").read_text())) == {"other", "dm"}


def test_length_batches_are_homogeneous_shuffled_and_a_permutation():
    from datamind_ext.sft.export import length_batched_order

    lengths = [(i * 37) % 101 for i in range(100)]  # 100 rows, lengths scattered
    order = length_batched_order(lengths, 8, seed=0)
    assert sorted(order) == list(range(100))
    batches = [order[i:i + 8] for i in range(0, 100, 8)]
    ranked = sorted(range(100), key=lambda i: (lengths[i], i))
    # each batch is a run of consecutive rows in length order (the least padding) ...
    assert all(b == ranked[ranked.index(b[0]):ranked.index(b[0]) + len(b)] for b in batches)
    # ... and the batches are not in length order (no long-to-short sweep), reproducibly per seed
    firsts = [lengths[b[0]] for b in batches]
    assert firsts != sorted(firsts) and firsts != sorted(firsts, reverse=True)
    assert order == length_batched_order(lengths, 8, seed=0) != length_batched_order(lengths, 8, seed=1)


def test_export_in_length_batches_writes_every_row_once(tmp_path, tiny_tokenizer):
    trajs = sample_trajectories(20, n_code_turns=1) + sample_trajectories(20, seed=1, n_code_turns=3)
    rep = export_llamafactory_dataset(trajs, tmp_path, name="dm", tokenizer=tiny_tokenizer, length_batch_rows=4)
    rows = [json.loads(line) for line in (tmp_path / "dm.jsonl").read_text().splitlines()]
    assert rep.n_written == len(rows) == 40
    turns = [len(r["messages"]) for r in rows]
    assert all(len(set(turns[i:i + 4])) == 1 for i in range(0, 40, 4))  # 1- and 3-cell rows never share a batch
    assert turns != sorted(turns) and turns != sorted(turns, reverse=True)


def test_max_tokens_needs_a_tokenizer(tmp_path):
    with pytest.raises(ValueError):
        export_llamafactory_dataset(sample_trajectories(1), tmp_path, max_tokens=10)


def test_datamind_block_is_split_off_and_strict():
    lf, block = split_sft_config({"template": "qwen", "datamind": {"loss": "dft"}}, "cfg.yaml")
    assert lf == {"template": "qwen"} and block.loss == "dft"
    assert split_sft_config({"template": "qwen"}, "cfg.yaml")[1] == DatamindSFTConfig()
    with pytest.raises(UserError, match="unknown key 'los'"):
        split_sft_config({"datamind": {"los": "dft"}}, "cfg.yaml")
    with pytest.raises(UserError, match="loss"):
        split_sft_config({"datamind": {"loss": "focal"}}, "cfg.yaml")
    with pytest.raises(UserError):
        split_sft_config(["not", "a", "mapping"], "cfg.yaml")


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 9, 13, generator=g)
    labels = torch.randint(0, 13, (2, 9), generator=g)
    labels[0, :4] = -100
    labels[1, -2:] = -100
    return logits, labels


@pytest.mark.parametrize("num_items", [None, torch.tensor(25)])
def test_nll_weighting_equals_transformers_causal_lm_loss(num_items):
    logits, labels = _batch()
    ours = make_loss_function("nll")(logits=logits, labels=labels, vocab_size=13, num_items_in_batch=num_items)
    ref = ForCausalLMLoss(logits, labels, 13, num_items_in_batch=num_items)
    torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("weighting", ["dft", "chord_phi"])
def test_weighted_losses_shift_labels_and_weight_by_detached_probability(weighting):
    logits, labels = _batch(1)
    logits.requires_grad_(True)
    loss = token_weighted_causal_lm_loss(logits, labels, 13, weighting=weighting)
    # reference by hand: position t predicts labels[t + 1]
    lp = torch.log_softmax(logits.detach(), -1)[:, :-1]
    tgt = labels[:, 1:]
    mask = tgt != -100
    logp = lp.gather(-1, tgt.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    p = logp.exp()
    w = p if weighting == "dft" else p * (1 - p)
    torch.testing.assert_close(loss.detach(), (-(logp * w))[mask].sum() / mask.sum())
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad[:, -1].abs().sum() == 0  # the last position predicts nothing


def test_unknown_weighting_is_rejected():
    with pytest.raises(ValueError):
        make_loss_function("focal")  # type: ignore[arg-type]


def test_capping_observations_keeps_a_long_trajectory_instead_of_dropping_it(tmp_path, tiny_tokenizer):
    base = sample_trajectory(4)
    huge = observation_message("The code ran successfully:\n" + "1234567890 " * 400)
    long_traj = _with(base, "huge-output", [*base.messages[:3], huge, *base.messages[4:]])
    max_tokens = len(render_messages(tiny_tokenizer, base.messages)) + 400  # 300 chars fit whatever the merges

    dropped = export_llamafactory_dataset([long_traj], tmp_path / "a", tokenizer=tiny_tokenizer, max_tokens=max_tokens)
    assert dropped.n_written == 0 and "huge-output" in dropped.too_long

    kept = export_llamafactory_dataset([long_traj], tmp_path / "b", tokenizer=tiny_tokenizer, max_tokens=max_tokens,
                                       max_observation_chars=300)
    assert kept.n_written == 1 and (kept.n_observations_capped, kept.n_trajectories_capped) == (1, 1)
    assert "capped 1 observations in 1 trajectories" in kept.summary()
    row = json.loads((tmp_path / "b" / "datamind.jsonl").read_text())
    obs = row["messages"][3]["content"]
    assert obs.startswith("<interpreter>\nThe code ran successfully:") and obs.endswith("\n</interpreter>")
    assert "characters cut" in obs and len(obs) < 400
    assert row["messages"][5] == base.messages[5].model_dump()  # the short observation is untouched

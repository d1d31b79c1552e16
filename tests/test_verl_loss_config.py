"""The combined loss's config block, trainer registration and expert-row layout (no worker)."""

from __future__ import annotations

import json

import pytest
import torch

from datamind_ext.errors import UserError


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def test_block_in_verl_config_selects_everything() -> None:
    from datamind_ext.integrations.verl.contract import resolve_loss_config

    cfg = _compose([
        "trainer.v1.trainer_mode=datamind_sync",
        "+actor_rollout_ref.datamind_loss.token_weighting=chord_phi",
        "+actor_rollout_ref.datamind_loss.schedule.name=adaptive",
        "+actor_rollout_ref.datamind_loss.schedule.decay_steps=200",
    ])
    loss_cfg = resolve_loss_config(cfg.actor_rollout_ref)
    assert loss_cfg.token_weighting == "chord_phi"
    assert loss_cfg.schedule.name == "adaptive" and loss_cfg.schedule.decay_steps == 200
    assert loss_cfg.schedule.peak == 0.9


def test_clip_ratios_come_from_verls_actor_keys_and_a_mismatch_is_refused() -> None:
    from datamind_ext.integrations.verl.contract import resolve_loss_config

    cfg = resolve_loss_config(_compose([
        "actor_rollout_ref.actor.clip_ratio_high=0.31", "actor_rollout_ref.actor.clip_ratio_c=7.0",
    ]).actor_rollout_ref)
    assert (cfg.clip_ratio_low, cfg.clip_ratio_high, cfg.clip_ratio_c) == (0.2, 0.31, 7.0)
    same = _compose(["actor_rollout_ref.actor.clip_ratio_high=0.28", "+actor_rollout_ref.datamind_loss.clip_ratio_high=0.28"])
    assert resolve_loss_config(same.actor_rollout_ref).clip_ratio_high == 0.28
    other = _compose(["actor_rollout_ref.actor.clip_ratio_high=0.2", "+actor_rollout_ref.datamind_loss.clip_ratio_high=0.28"])
    with pytest.raises(UserError, match=r"actor_rollout_ref\.actor\.clip_ratio_high"):
        resolve_loss_config(other.actor_rollout_ref)


def test_kl_or_entropy_bonus_is_refused_by_name() -> None:
    from datamind_ext.integrations.verl.contract import (
        check_actor_settings,
        resolve_loss_config,
    )

    for override in ("actor_rollout_ref.actor.use_kl_loss=true", "actor_rollout_ref.actor.entropy_coeff=0.01"):
        arr = _compose([override]).actor_rollout_ref
        with pytest.raises(UserError, match="use_kl_loss=false and entropy_coeff=0"):
            check_actor_settings(arr, resolve_loss_config(arr))
    disabled = _compose(["actor_rollout_ref.actor.use_kl_loss=true", "+actor_rollout_ref.datamind_loss.enable=false"])
    check_actor_settings(disabled.actor_rollout_ref, resolve_loss_config(disabled.actor_rollout_ref))


def test_defaults_without_block_and_unknown_key_is_a_user_error() -> None:
    from datamind_ext.integrations.verl.contract import resolve_loss_config

    default = resolve_loss_config(_compose([]).actor_rollout_ref)
    assert default.schedule.name == "cosine" and default.schedule.decay_steps == 350 and default.enable
    bad = _compose(["+actor_rollout_ref.datamind_loss.gama=0.5"])
    with pytest.raises(UserError, match="unknown key 'gama'"):
        resolve_loss_config(bad.actor_rollout_ref)


def test_trainer_mode_is_registered_through_the_plugin() -> None:
    import verl  # noqa: F401 - the entry point registers our components
    from verl.trainer.ppo.v1.trainer_base import get_trainer_cls
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    from datamind_ext.integrations.verl.registration import FAILURES
    from datamind_ext.integrations.verl.trainer import DataMindTrainerSync

    assert not FAILURES
    cls = get_trainer_cls("datamind_sync")
    assert cls is DataMindTrainerSync and issubclass(cls, PPOTrainerSync)


def test_interleave_gives_every_rank_and_mini_batch_both_kinds() -> None:
    from datamind_ext.integrations.verl.trainer import interleave, padded_expert_count

    assert padded_expert_count(5, dp_size=2, num_mini_batch=2) == 8
    assert padded_expert_count(8, dp_size=2, num_mini_batch=2) == 8
    assert padded_expert_count(0, dp_size=2, num_mini_batch=2) == 0
    rl = [f"r{i}" for i in range(16)]
    ex = [f"e{i}" for i in range(8)]
    order = interleave(rl, ex, dp_size=2, num_mini_batch=2)
    assert sorted(order) == sorted(rl + ex)
    chunks = [order[:12], order[12:]]  # verl dispatches contiguous equal chunks per rank
    for chunk in chunks:
        for mb in (chunk[:6], chunk[6:]):  # contiguous mini-batches of that rank
            assert sum(k.startswith("r") for k in mb) == 4 and sum(k.startswith("e") for k in mb) == 2
    assert order[:4] == rl[:4]  # verl's seq-length balancing of the rollouts is kept per rank


def test_expert_sample_keeps_schema_and_zeroes_response_fields(tiny_tokenizer) -> None:
    from datamind_ext.integrations.verl.trainer import expert_sample
    from datamind_ext.integrations.verl.worker import expert_row

    template = {
        "prompts": torch.arange(5), "responses": torch.arange(3), "response_mask": torch.ones(3, dtype=torch.int64),
        "old_log_probs": torch.full((3,), -1.0), "advantages": torch.ones(3), "rm_scores": torch.tensor([0.0, 0.0, 1.0]),
        "uid": "u1", "extra_info": {"a": 1}, "is_expert": torch.tensor(0), "is_void": torch.tensor(1),
    }
    row = expert_row(tiny_tokenizer, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "<answer>1</answer>"}])
    s = expert_sample(template, row, "datamind_expert_1_0")
    assert set(template) <= set(s)
    n = len(row["responses"])
    assert s["uid"] == "datamind_expert_1_0" and int(s["is_expert"]) == 1 and int(s["is_void"]) == 0
    for key in ("old_log_probs", "advantages", "rm_scores"):
        assert s[key].shape == (n,) and not s[key].any()
    assert torch.equal(s["input_ids"], torch.cat([row["prompts"], row["responses"]]))
    filler = expert_sample(template, None, "f")
    assert filler["response_mask"].sum() == 0  # padding rows train nothing


def test_expert_messages_from_accepts_lists_and_json() -> None:
    from datamind_ext.integrations.verl.trainer import expert_messages_from

    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<answer>a</answer>"}]
    assert expert_messages_from({"expert_messages": msgs}) == msgs
    assert expert_messages_from({"expert_messages": json.dumps(msgs)}) == msgs
    assert expert_messages_from({"expert_messages": msgs, "dm_void": 1, "num_turns": 3}) == msgs  # verl's merged keys
    assert expert_messages_from({}) is None
    assert expert_messages_from(None) is None


def test_expert_row_starts_the_response_at_the_first_trained_token(tiny_tokenizer) -> None:
    """Each assistant turn's first token is inside the trained mask (no off-by-one), observations are not."""
    from datamind_ext.integrations.verl.worker import expert_row
    from datamind_ext.protocol import render_messages

    msgs = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "<code>print(1)</code>"},
        {"role": "user", "content": "<interpreter>1</interpreter>"},
        {"role": "assistant", "content": "<answer>1</answer>"},
    ]
    row = expert_row(tiny_tokenizer, msgs)
    rendered = render_messages(tiny_tokenizer, msgs)
    assert row["response_mask"][0] == 1  # response token 0 = first assistant token, trained
    assert torch.equal(torch.cat([row["prompts"], row["responses"]]), torch.tensor(rendered.input_ids))
    mask = row["response_mask"].tolist()
    starts = [i for i in range(1, len(mask)) if mask[i] == 1 and mask[i - 1] == 0]
    assert len(starts) == 1  # the second assistant turn starts trained right after the observation
    first_turn_ids = tiny_tokenizer.encode("<code>", add_special_tokens=False)
    second_turn_ids = tiny_tokenizer.encode("<answer>", add_special_tokens=False)
    assert row["responses"][0].item() == first_turn_ids[0]
    assert row["responses"][starts[0]].item() == second_turn_ids[0]


def test_adaptive_statistics_count_rollouts_only() -> None:
    from datamind_ext.integrations.verl.worker import (
        local_stat_sums,
        rows_to_tensordict,
    )

    def row(n: int, reward: float, ent: float, **flags):
        mask = torch.ones(n, dtype=torch.int64)
        mask[0] = 0  # an observation token: not in the entropy
        scores = torch.zeros(n)
        scores[-1] = reward
        return {"prompts": torch.arange(3), "responses": torch.arange(n), "response_mask": mask,
                "rm_scores": scores, "entropy": torch.full((n,), ent), **flags}

    td = rows_to_tensordict([
        row(4, 1.0, 0.5), row(5, 0.0, 1.0), row(3, -1.0, 2.0, is_void=1), row(6, 0.0, 9.0, is_expert=1),
    ])
    succ, rollouts, ent_sum, toks = local_stat_sums(td, success_threshold=0.0)
    assert (succ, rollouts) == (1.0, 3.0)  # the void rollout failed; the expert row is not a rollout
    assert toks == 3 + 4  # non-void rollouts' trained tokens
    assert ent_sum == pytest.approx(3 * 0.5 + 4 * 1.0)


def _actor_worker_child(model_dir: str) -> dict:  # pragma: no cover - runs in a child process
    """verl's ActorRolloutRefWorker subclass (role actor): init_model installs our loss; update_actor uses it."""
    import os

    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", WG_BACKEND="ray", VERL_USE_EXTERNAL_PLUGINS="none")
    from datamind_ext.integrations.verl.cpu import activate_cpu_shims

    activate_cpu_shims()
    from verl.utils import tensordict_utils as tu

    from datamind_ext.integrations.verl.contract import resolve_loss_config
    from datamind_ext.integrations.verl.worker import (
        DataMindActorRolloutRefWorker,
        expert_row,
        rows_to_tensordict,
    )

    def config(*extra: str):
        return _compose([
            f"actor_rollout_ref.model.path={model_dir}", "actor_rollout_ref.model.use_remove_padding=False",
            "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
            "actor_rollout_ref.actor.strategy=fsdp2", "actor_rollout_ref.actor.ppo_mini_batch_size=2",
            "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1", "actor_rollout_ref.actor.use_dynamic_bsz=False",
            "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=1", "actor_rollout_ref.rollout.n=1",
            "+actor_rollout_ref.datamind_loss.schedule.name=constant",
            "+actor_rollout_ref.datamind_loss.schedule.value=0.25",
            "+actor_rollout_ref.datamind_loss.token_weighting=dft", *extra,
        ]).actor_rollout_ref

    cfg = config()
    w = DataMindActorRolloutRefWorker(cfg, role="actor")
    w.init_model()
    w.set_datamind_loss(resolve_loss_config(cfg))  # what DataMindTrainerSync.on_init_end calls
    out = {"actor_cls": type(w.actor).__name__, "loss_fn": w.actor.loss_fn.func.__name__,
           "weighting": w.actor.loss_fn.args[0].token_weighting}
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    ex = expert_row(tok, [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<answer>1</answer>"}])
    rollout = {"prompts": ex["prompts"], "responses": torch.tensor([5, 6, 7]), "response_mask": torch.ones(3, dtype=torch.int64),
               "old_log_probs": torch.full((3,), -5.0), "advantages": torch.ones(3)}
    td = rows_to_tensordict([rollout, dict(ex, is_expert=1)])
    tu.assign_non_tensor(td, datamind_step=7, mini_batch_size=2, epochs=1, seed=1, dataloader_kwargs={"shuffle": False},
                         global_batch_size=2, calculate_entropy=True, temperature=1.0)
    metrics = w.update_actor(td)["metrics"]
    out["gamma"] = [float(x) for x in metrics["actor/gamma"]]
    out["sft_tokens"] = float(metrics["actor/sft_tokens"][0])
    return out


def test_actor_worker_installs_the_configured_loss(tiny_model_path) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(29400 + os.getpid() % 300), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, __file__, str(tiny_model_path)], capture_output=True, text=True, check=False,
                          timeout=600, env=env, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["actor_cls"] == "DataMindTrainingWorker" and out["loss_fn"] == "datamind_actor_loss"
    assert out["weighting"] == "dft"
    assert out["gamma"] and all(g == 0.25 for g in out["gamma"])
    assert out["sft_tokens"] > 0


if __name__ == "__main__":  # pragma: no cover - child process entry
    import sys

    print(json.dumps(_actor_worker_child(sys.argv[1])))

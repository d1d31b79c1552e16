"""The pass/fail rule of ``make test-vllm-cpu`` (datamind_ext/recipes/vllm_cpu_check.py), on verl-style log lines."""

from __future__ import annotations

import math

from datamind_ext.integrations import vllm_cpu
from datamind_ext.recipes.vllm_cpu_check import DECAY_STEPS, HEAD32, check_steps


def _line(step: int, **over: float) -> str:
    gamma = 0.05 + 0.85 * 0.5 * (1 + math.cos(math.pi * step / DECAY_STEPS))
    m = {"actor/gamma": gamma, "datamind/expert_rows": 4, "actor/sft_tokens": 120, "actor/rl_tokens": 300,
         "actor/sft_loss": 6.5, "actor/pg_loss": 0.02, "datamind/void_rate": 0.5,
         "critic/score/mean": 0.1} | over
    m["actor/loss"] = over.get("actor/loss", gamma * m["actor/sft_loss"] + (1 - gamma) * m["actor/pg_loss"])
    return f"(TaskRunnerV1 pid=1) step:{step} - " + " - ".join(f"{k}:{v}" for k, v in m.items())


def test_two_good_steps_pass_and_each_broken_metric_fails() -> None:
    assert check_steps(_line(1) + "\n" + _line(2)) == []
    assert check_steps(_line(1)) == ["steps logged: [1]"]
    assert "actor/gamma" in check_steps(_line(1, **{"actor/gamma": 0.9}) + "\n" + _line(2))[0]
    assert "datamind/expert_rows" in check_steps(_line(1, **{"datamind/expert_rows": 0}) + "\n" + _line(2))[0]
    assert "γ·sft" in check_steps(_line(1) + "\n" + _line(2, **{"actor/loss": 1.0}))[0]
    # all void: no RL tokens is right, some RL tokens is wrong; not all void: RL tokens are needed
    void = {"datamind/void_rate": 1.0, "actor/rl_tokens": 0, "actor/pg_loss": 0.0}
    assert check_steps(_line(1, **void) + "\n" + _line(2, **void)) == []
    assert "rl_tokens" in check_steps(_line(1, **(void | {"actor/rl_tokens": 5})) + "\n" + _line(2, **void))[0]
    assert "rl_tokens" in check_steps(_line(1, **{"actor/rl_tokens": 0}) + "\n" + _line(2))[0]


def test_the_model_meets_vllm_cpu_head_dim_and_the_workarounds_stay_rollout_only() -> None:
    assert HEAD32["hidden_size"] // HEAD32["num_attention_heads"] >= 32
    assert vllm_cpu.ENV["VLLM_TARGET_DEVICE"] == "cpu"
    assert all(o.lstrip("+").startswith("actor_rollout_ref.rollout.") for o in vllm_cpu.ROLLOUT_OVERRIDES)
    assert any(o.endswith("=datamind_ext.integrations.vllm_cpu.CpuWorkerExtension") for o in vllm_cpu.ROLLOUT_OVERRIDES)

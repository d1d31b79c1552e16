"""Stock ``python -m verl.trainer.main_ppo`` with ``trainer.v1.trainer_mode=datamind_sync`` on CPU (slow).

Two GRPO steps of the tiny model: 4 prompts × 2 rollouts through the ``datamind_hf`` CPU rollout
backend, a rule reward from a file, and each prompt's expert trajectory in ``extra_info``. The
console logger's step lines must carry γ from the schedule, a positive SFT token count and the
combined loss ``γ·sft_loss + (1−γ)·pg_loss``.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REWARD = '''
def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kw):
    return float(len(solution_str) % 3 == 0)
'''


def _data(tmp: Path) -> tuple[Path, Path]:
    import pandas as pd

    rows = []
    for i in range(8):
        q = f"What is {i} plus {i}?"
        rows.append({"prompt": [{"role": "user", "content": q}], "data_source": "toy", "ability": "math",
                     "reward_model": {"ground_truth": str(2 * i), "style": "rule"},
                     "extra_info": {"index": i, "expert_messages": [
                         {"role": "user", "content": q}, {"role": "assistant", "content": f"<answer>{2 * i}</answer>"}]}})
    pd.DataFrame(rows).to_parquet(tmp / "train.parquet")
    pd.DataFrame(rows[:4]).to_parquet(tmp / "val.parquet")
    (tmp / "reward.py").write_text(REWARD)
    return tmp / "train.parquet", tmp / "val.parquet"


def _steps(log: str) -> list[dict[str, float]]:
    out = []
    for line in log.splitlines():
        if " step:" not in line and not line.startswith("step:"):
            continue
        metrics = dict(re.findall(r"([\w/@.\-]+):(-?[\d.eE+-]+|nan|inf)", line[line.index("step:"):]))
        out.append({k: float(v) for k, v in metrics.items()})
    return out


def test_main_ppo_trains_with_the_combined_loss(tiny_model_path: Path, tmp_path: Path) -> None:
    train, val = _data(tmp_path)
    env = dict(os.environ, DATAMIND_VERL_CPU="1", VERL_PLATFORM="cpu", OMP_NUM_THREADS="1", WANDB_MODE="disabled",
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", RAY_DEDUP_LOGS="0")
    cmd = [sys.executable, "-m", "verl.trainer.main_ppo",
           "trainer.v1.trainer_mode=datamind_sync",
           f"data.train_files={train}", f"data.val_files={val}", "data.train_batch_size=4",
           "data.max_prompt_length=64", "data.max_response_length=32", "data.dataloader_num_workers=0",
           f"actor_rollout_ref.model.path={tiny_model_path}", "actor_rollout_ref.model.use_remove_padding=False",
           "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
           "actor_rollout_ref.actor.strategy=fsdp2", "actor_rollout_ref.actor.ppo_mini_batch_size=4",
           "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4", "actor_rollout_ref.actor.use_dynamic_bsz=False",
           "actor_rollout_ref.actor.use_kl_loss=False", "actor_rollout_ref.actor.entropy_coeff=0",
           "actor_rollout_ref.rollout.name=datamind_hf", "actor_rollout_ref.rollout.n=2",
           "actor_rollout_ref.rollout.tensor_model_parallel_size=1", "actor_rollout_ref.rollout.agent.num_workers=1",
           "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
           "+actor_rollout_ref.datamind_loss.schedule.decay_steps=3",
           "algorithm.adv_estimator=grpo", "algorithm.use_kl_in_reward=False",
           f"reward.custom_reward_function.path={tmp_path / 'reward.py'}", "reward.num_workers=1",
           "trainer.n_gpus_per_node=1", "trainer.nnodes=1", "trainer.total_training_steps=2",
           "trainer.val_before_train=False", "trainer.test_freq=-1", "trainer.save_freq=-1",
           "trainer.logger=[console]", "trainer.critic_warmup=0", f"trainer.default_local_dir={tmp_path / 'ckpt'}",
           "+ray_kwargs.ray_init.num_gpus=1", "ray_kwargs.ray_init.num_cpus=16",
           "transfer_queue.backend.SimpleStorage.num_data_storage_units=1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900, env=env, cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    steps = _steps(log)
    assert [int(s["step"]) for s in steps] == [1, 2]
    for t, s in zip((1, 2), steps):
        gamma = 0.05 + 0.85 * 0.5 * (1 + math.cos(math.pi * t / 3))
        assert s["actor/gamma"] == pytest.approx(gamma)
        assert s["datamind/expert_rows"] == 4 and s["actor/sft_tokens"] > 0 and s["actor/rl_tokens"] > 0
        assert math.isfinite(s["actor/sft_loss"]) and s["actor/sft_loss"] > 0
        # the three are logged from bf16 values on CPU (8 significant bits: ~0.4 % apart at most each)
        assert s["actor/loss"] == pytest.approx(gamma * s["actor/sft_loss"] + (1 - gamma) * s["actor/pg_loss"], rel=1e-2)

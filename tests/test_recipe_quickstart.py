"""The CPU quickstart end-to-end, exactly as the README runs it (slow: ~10-21 min on 2 cores, by CPU).

tiny model → programmatic synthesis → LLaMA-Factory SFT → stock verl ``main_ppo`` with our agent
loop, combined loss and rewards → eval of the base, SFT and RL checkpoints on the held-out sets →
summary table and plots. The figures themselves are measured, not asserted (they are printed in
the summary); the test asserts the chain's artifacts, that the RL log is verl's trainer running our
components, and one coarse learning check: after SFT the model follows the protocol on held-out
tables with familiar names (most episodes end in an ``<answer>``), which the random base model does not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_end_to_end(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "datamind_ext", "run", "recipes/quickstart", "--run-dir", str(run_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=3000, check=False,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
    sys.stdout.write(proc.stdout[-8000:])  # the summary table, in the test log (pytest -rA / on failure)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    out = proc.stdout

    # the chain's artifacts
    model = Path((run_dir / "model" / "path.txt").read_text().strip())
    assert (model / "config.json").is_file()
    assert (run_dir / "synth/train/export/rl/train.parquet").is_file()
    for name in ("familiar_names", "unseen_names"):
        assert (run_dir / "heldout" / name / "synth/export/rl/train.parquet").is_file()
    assert (run_dir / "sft/config.json").is_file() and (run_dir / "sft/trainer_log.jsonl").is_file()
    assert (run_dir / "sft/llamafactory_train.yaml").is_file()
    hf = sorted((run_dir / "rl/ckpt").glob("global_step_*/actor/huggingface"))
    assert hf and (hf[-1] / "config.json").is_file()
    # eval.checkpoint_sets: the base and RL checkpoints on familiar_names, the SFT one on both sets
    for ckpt, name in (("base", "familiar_names"), ("sft", "familiar_names"), ("sft", "unseen_names"), ("rl", "familiar_names")):
        summ = json.loads((run_dir / "eval" / ckpt / name / "summary.json").read_text())
        items = summ["overall"]["rule"]["items"]
        assert summ["benchmark"] == "synth" and (items == 20 if ckpt == "base" else items >= 20)
        assert ckpt == "base" or name != "familiar_names" or items >= 100  # n large enough for ±8 points
    assert not (run_dir / "eval" / "rl" / "unseen_names").exists()
    for png in ("sft_loss.png", "rl_curves.png", "pass_rates.png"):
        assert (run_dir / png).stat().st_size > 1000

    # the RL stage's log comes from verl's trainer, with our components in its resolved config
    log = (run_dir / "rl/log.txt").read_text(errors="replace")
    assert "TaskRunnerV1" in log and "Training Progress" in log
    assert "'trainer_mode': 'datamind_sync'" in log  # our trainer mode: the combined-loss update
    assert "'datamind_loss':" in log and "'token_weighting': 'nll'" in log
    assert "'default_agent_loop': 'datamind_code_agent'" in log
    assert "'path': 'pkg://datamind_ext.integrations.verl.rewards'" in log
    assert "'name': 'datamind'" in log  # reward manager
    summary = json.loads((run_dir / "summary.json").read_text())
    steps = summary["rl_steps"]
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert all(s["gamma"] is not None and 0.05 <= s["gamma"] <= 0.9 for s in steps)
    assert all(s["sft_loss"] is not None and s["sft_loss"] > 0 for s in steps)
    assert all(s["void_rate"] is not None and 0 <= s["void_rate"] <= 1 for s in steps)
    assert all(s["reward_mean"] is not None and s["pg_loss"] is not None for s in steps)
    assert all(s["reward_band"] and s["reward_band"]["n"] >= 2 for s in steps)  # verl's rollout dumps were read
    assert summary["sft_loss"]["last"] < 0.25 * summary["sft_loss"]["first"]

    # coarse learning check (not a figure): SFT taught the protocol on familiar names
    evals = summary["eval"]
    assert evals["sft"]["familiar_names"]["answered"] >= 0.5 > evals["base"]["familiar_names"]["answered"]

    # the printed summary: the table and the upstream commands
    assert "## RL (verl main_ppo)" in out and "| step | reward mean | reward 95% band (n) | γ |" in out
    assert "| checkpoint | familiar_names pass@1 |" in out
    assert "## RL's effect on the held-out sets" in out
    assert isinstance(summary["comparable"], bool)
    assert "python -m verl.trainer.main_ppo --config-path=" in out
    assert "datamind-ext sft " in out and "llamafactory-cli train " in out

    # a second run skips every stage (markers with the config hash)
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("skipped") >= 5

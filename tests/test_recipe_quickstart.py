"""The CPU quickstart recipe end-to-end, in a reduced-size mode of the same recipe (slow).

Reduced: the same recipes/quickstart configs (rl.yaml + its CPU preset, sft.yaml, eval.yaml) with
fewer synthesized tasks, 12 SFT steps, 2 RL steps and 4 held-out tasks per set, so the whole chain
(tiny model → synthesis → LLaMA-Factory SFT → verl main_ppo → eval) fits a CI budget. The full-size
quickstart is `make quickstart` (the same command without these overrides).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "recipes" / "quickstart"


def reduced_recipe(tmp: Path) -> Path:
    spec = yaml.safe_load((QUICKSTART / "recipe.yaml").read_text())
    synth = yaml.safe_load((QUICKSTART / "synth.yaml").read_text()) | {"tasks_per_table": 6}
    (tmp / "synth.yaml").write_text(yaml.safe_dump(synth))
    spec["synth"]["config"] = str(tmp / "synth.yaml")
    for h in spec["synth"]["heldout"]:
        h["tasks_per_table"] = 1
    spec["sft"]["config"] = str(QUICKSTART / spec["sft"]["config"])
    spec["sft"]["overrides"] = ["max_steps=12", "logging_steps=2"]
    spec["rl"]["config"] = str(QUICKSTART / spec["rl"]["config"])
    spec["rl"]["overrides"] = ["trainer.total_training_steps=2", "trainer.save_freq=2"]
    spec["eval"]["config"] = str(QUICKSTART / spec["eval"]["config"])
    spec["eval"]["limit"] = 4
    (tmp / "recipe.yaml").write_text(yaml.safe_dump(spec))
    return tmp


def test_quickstart_chain_reduced(tmp_path: Path) -> None:
    (tmp_path / "recipe_dir").mkdir()
    recipe = reduced_recipe(tmp_path / "recipe_dir")
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "datamind_ext", "run", str(recipe), "--run-dir", str(run_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1800, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    out = proc.stdout

    # the chain's artifacts
    model = Path((run_dir / "model" / "path.txt").read_text().strip())
    assert (model / "config.json").is_file()
    assert (run_dir / "synth/train/export/rl/train.parquet").is_file()
    for name in ("familiar_names", "unseen_names"):
        assert (run_dir / "heldout" / name / "synth/export/rl/train.parquet").is_file()
    assert (run_dir / "sft/config.json").is_file() and (run_dir / "sft/trainer_log.jsonl").is_file()
    hf = sorted((run_dir / "rl/ckpt").glob("global_step_*/actor/huggingface"))
    assert hf and (hf[-1] / "config.json").is_file()
    for ckpt in ("base", "sft", "rl"):
        for name in ("familiar_names", "unseen_names"):
            summ = json.loads((run_dir / "eval" / ckpt / name / "summary.json").read_text())
            assert summ["benchmark"] == "synth" and summ["overall"]["rule"]["items"] >= 1
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
    assert [s["step"] for s in steps] == [1, 2]
    assert all(s["gamma"] is not None and 0.05 <= s["gamma"] <= 0.9 for s in steps)
    assert all(s["sft_loss"] is not None and s["sft_loss"] > 0 for s in steps)
    assert all(s["void_rate"] is not None and 0 <= s["void_rate"] <= 1 for s in steps)
    assert all(s["reward_mean"] is not None and s["pg_loss"] is not None for s in steps)
    assert summary["sft_loss"]["steps"] == 12

    # the printed summary: the table and the upstream commands
    assert "## RL (verl main_ppo)" in out and "| step | reward mean | γ | sft_loss | pg_loss | void rate |" in out
    assert "python -m verl.trainer.main_ppo --config-path=" in out
    assert "datamind-ext sft " in out

    # a second run skips every stage (markers with the config hash)
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("skipped") >= 5

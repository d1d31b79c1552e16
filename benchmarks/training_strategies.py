"""DataMind's training-strategy ablation in miniature: the tiny model, the same data and compute per arm.

Arms (the paper's Table on 7B beside each, pass@1):

* ``sft_only``        — the SFT checkpoint                                   (paper: SFT 62.54)
* ``rl_from_base``    — RL from the base model, γ = 0                       (paper: zero-RL 58.03)
* ``sft_then_rl``     — RL from the SFT checkpoint, γ = 0                   (paper: SFT-then-RL 63.42)
* ``sft_rl_cosine``   — RL from the SFT checkpoint, cosine γ (the recipe)   (paper: SFT-and-RL dynamic γ 68.10)
* ``fixed_0.2``, ``fixed_0.8`` — RL from the SFT checkpoint, constant γ     (paper: stability findings only)

Everything goes through the real stack, exactly as the CPU quickstart runs it: the recipe runner's
model, synthesis and LLaMA-Factory SFT stages (run once, shared by every arm), then per arm stock
verl ``main_ppo`` with our trainer mode, combined loss, agent loop and rewards (the quickstart's
``rl.yaml`` + CPU preset; only the start model, γ schedule and step count differ), then the same
held-out evaluation (greedy, ``familiar_names``). Every RL arm runs the same number of steps on the
same seeded prompt order, and computes the combined loss whatever its γ (γ = 0 still carries the
expert rows, weighted 0), so the arms cost the same.

Printed: per arm pass@1 with n and a 95 % Wilson interval, the last step's reward mean and RL
entropy, the paper's figure beside it; where an RL step's time goes (verl's ``timing_s/*`` per step,
averaged); ``curves.png`` (reward mean and entropy per step, per arm) and ``table.json`` in the out folder.

    .venv/bin/python benchmarks/training_strategies.py --quick      # smoke-sized: minutes per arm
    .venv/bin/python benchmarks/training_strategies.py              # ~1 hour on 2 idle cores
    .venv/bin/python benchmarks/training_strategies.py --arms sft_only,sft_rl_cosine --rl-steps 10

Run from the repository root. Stages and arms are resumable (a finished arm is not rerun).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datamind_ext.recipes.runner import (
    Command,
    Recipe,
    _wait_for_server,
    free_port,
    rl_command,
    run_recipe,
)
from datamind_ext.recipes.stats import wilson_interval
from datamind_ext.recipes.summary import eval_figures, pick, rl_steps, step_time

QUICKSTART = ROOT / "recipes" / "quickstart"
EVAL_SET = "familiar_names"


@dataclass(frozen=True)
class Arm:
    name: str
    start: str  # "base" or "sft"
    schedule: dict[str, Any] | None  # γ schedule overrides; None: no RL
    paper: float | None
    paper_label: str


ARMS = [
    Arm("sft_only", "sft", None, 62.54, "SFT"),
    Arm("rl_from_base", "base", {"name": "constant", "value": 0.0}, 58.03, "zero-RL"),
    Arm("sft_then_rl", "sft", {"name": "constant", "value": 0.0}, 63.42, "SFT-then-RL"),
    Arm("sft_rl_cosine", "sft", {}, 68.10, "SFT-and-RL, dynamic γ"),
    Arm("fixed_0.2", "sft", {"name": "constant", "value": 0.2}, None, "small fixed γ: oscillates, collapses"),
    Arm("fixed_0.8", "sft", {"name": "constant", "value": 0.8}, None, "fixed γ 0.8: entropy collapses"),
]


def quickstart_sft_steps() -> int:
    """The quickstart's SFT length: the default, so the ``sft_only`` arm is the quickstart's SFT model."""
    return int(yaml.safe_load((QUICKSTART / "sft.yaml").read_text())["max_steps"])


def bench_recipe(out: Path, sft_steps: int, heldout_tasks_per_table: int | None) -> Path:
    """A copy of the quickstart recipe with this benchmark's SFT steps and held-out size (None: the quickstart's)."""
    folder = out / "recipe"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(QUICKSTART, folder)
    spec = yaml.safe_load((folder / "recipe.yaml").read_text())
    spec["run_dir"] = str(out / "shared")
    spec["synth"]["data"] = str((ROOT / spec["synth"]["data"]).resolve())
    spec["synth"]["heldout"] = [dict(h, tasks_per_table=heldout_tasks_per_table or h["tasks_per_table"])
                                for h in spec["synth"]["heldout"] if h["name"] == EVAL_SET]
    spec["eval"].pop("checkpoint_sets", None)  # arms are scored here, on EVAL_SET; the other held-out sets are dropped
    spec["sft"]["overrides"] = [f"max_steps={sft_steps}"]
    (folder / "recipe.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def run_arm_rl(r: Recipe, arm: Arm, arm_dir: Path, rl_steps_n: int, lr: float | None) -> Path:
    """verl main_ppo for one arm (the quickstart's command, with this arm's start model and γ; ``lr``:
    the actor's learning rate instead of rl.yaml's)."""
    cmd = rl_command(r)
    start = r.base_model() if arm.start == "base" else str(r.sft_dir)
    keep = [a for a in cmd.argv if not a.startswith(("actor_rollout_ref.model.path=", "trainer.default_local_dir=",
                                                    "trainer.rollout_data_dir="))]
    extra = [f"actor_rollout_ref.model.path={start}", f"trainer.default_local_dir={arm_dir / 'ckpt'}",
             f"trainer.rollout_data_dir={arm_dir / 'rollouts'}", f"trainer.total_training_steps={rl_steps_n}",
             f"trainer.save_freq={rl_steps_n}", f"trainer.experiment_name=strategies_{arm.name}"]
    extra += [f"actor_rollout_ref.actor.optim.lr={lr}"] if lr is not None else []
    # "++": set the key whether or not rl.yaml has it (its schedule block names only the cosine's keys)
    schedule = dict(arm.schedule or {})
    if schedule.get("name", "cosine") == "cosine":
        # decay over this arm's RL steps: rl.yaml's 350 are the full recipe's, and over 20 steps
        # the cosine γ would only go 0.900 -> 0.893 (measured: the arm was SFT-then-RL at γ ~ 0.9)
        schedule.setdefault("decay_steps", rl_steps_n)
    extra += [f"++actor_rollout_ref.datamind_loss.schedule.{k}={v}" for k, v in schedule.items()]
    arm_dir.mkdir(parents=True, exist_ok=True)
    r.execute(Command(keep + extra, arm_dir / "log.txt", env=cmd.env, timeout_s=cmd.timeout_s, cwd=arm_dir))
    found = sorted(arm_dir.glob("ckpt/global_step_*/actor/huggingface"), key=lambda p: int(p.parent.parent.name.rsplit("_", 1)[1]))
    if not found:
        raise SystemExit(f"{arm.name}: verl wrote no huggingface checkpoint under {arm_dir / 'ckpt'}")
    return found[-1]


def evaluate(r: Recipe, model: str, out_dir: Path, limit: int | None) -> dict[str, Any]:
    """Greedy held-out eval of one checkpoint, served by our CPU server (the quickstart's eval)."""
    if not (out_dir / "summary.json").is_file():
        port = free_port()
        url = f"http://127.0.0.1:{port}/v1"
        out_dir.mkdir(parents=True, exist_ok=True)
        with (out_dir / "server.txt").open("w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "datamind_ext.generation.server", "--model", model,
                                     "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for_server(url, proc, 600, out_dir / "server.txt")
            argv = [sys.executable, "-m", "datamind_ext", "eval", "synth", "--data", str(r.heldout_dir(EVAL_SET) / "synth"),
                    "--model", model, "--base-url", url, "--k", "1", "--concurrency", "8", "--out", str(out_dir),
                    "--no-progress", "--config", str(r.cfg(r.spec.eval.config or "eval.yaml"))]
            argv += ["--limit", str(limit)] if limit else []
            r.execute(Command(argv, out_dir / "eval.log.txt"))
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    figures = eval_figures(out_dir)
    assert figures is not None
    return figures


def curves(arm_dir: Path) -> list[dict[str, float]]:
    log = arm_dir / "log.txt"
    return rl_steps(log.read_text(errors="replace")) if log.is_file() else []


def plot(out: Path, per_arm: dict[str, list[dict[str, float]]], filename: str = "curves.png") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, steps in per_arm.items():
        if not steps:
            continue
        x = [int(s["step"]) for s in steps]
        for ax, names in ((axes[0], ("critic/score/mean",)), (axes[1], ("actor/rl_entropy", "actor/entropy"))):
            ys = [pick(s, names) for s in steps]
            ax.plot(x, [float("nan") if y is None else y for y in ys], marker="o", label=name)
    axes[0].set(xlabel="RL step", title="reward mean")
    axes[1].set(xlabel="RL step", title="entropy of the RL tokens (nats)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / filename, dpi=110)
    plt.close(fig)
    return out / filename


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke size: 150 SFT steps, 2 RL steps, 20 held-out tasks "
                    "(default: the quickstart's SFT steps and familiar_names set, 20 RL steps per arm)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "training_strategies")
    ap.add_argument("--arms", default=",".join(a.name for a in ARMS))
    ap.add_argument("--sft-steps", type=int, default=None)
    ap.add_argument("--rl-steps", type=int, default=None)
    ap.add_argument("--n", type=int, default=None, help="held-out tasks evaluated per arm")
    ap.add_argument("--rl-lr", type=float, default=None,
                    help="the RL arms' actor learning rate (default: rl.yaml's 1e-5, which moves the tiny model's "
                    "weights by ~0.1 %% in 20 steps); arms, table and curves then carry the suffix _lrX")
    args = ap.parse_args(argv)
    sft_steps = args.sft_steps or (150 if args.quick else quickstart_sft_steps())
    rl_n = args.rl_steps or (2 if args.quick else 20)
    n = args.n or (20 if args.quick else None)  # None: every task of the quickstart's familiar_names set
    arms = [a for a in ARMS if a.name in args.arms.split(",")]
    if not arms:
        raise SystemExit(f"--arms: none of {args.arms!r} is one of {', '.join(a.name for a in ARMS)}")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(ROOT)

    recipe = bench_recipe(out, sft_steps, heldout_tasks_per_table=max(6, -(-n // 14)) if n else None)
    run_recipe(recipe, to_stage="sft", log=lambda s: print(s, flush=True))  # model, synthesis, SFT: shared, resumable
    r = Recipe(recipe)
    rows, per_arm = [], {}
    tag = f"_lr{args.rl_lr:g}" if args.rl_lr is not None else ""
    for arm in arms:
        arm_dir = out / "arms" / (arm.name + (tag if arm.schedule is not None else ""))
        print(f"== arm {arm.name} ==", flush=True)
        if arm.schedule is None:
            model = str(r.sft_dir)
        else:
            done = sorted(arm_dir.glob("ckpt/global_step_*/actor/huggingface"))
            model = str(done[-1]) if (arm_dir / "done").is_file() and done else str(run_arm_rl(r, arm, arm_dir, rl_n, args.rl_lr))
            (arm_dir / "done").write_text(model + "\n")
        fig = evaluate(r, model, arm_dir / "eval", n)
        steps = per_arm[arm.name] = curves(arm_dir)
        k = round(fig["pass@1"] * fig["items"])
        lo, hi = wilson_interval(k, fig["items"])
        last = steps[-1] if steps else {}
        rows.append({"arm": arm.name, "pass@1": fig["pass@1"], "n": fig["items"], "ci95": [lo, hi],
                     "answered": fig["answered"], "reward_last": pick(last, ("critic/score/mean",)),
                     "entropy_last": pick(last, ("actor/rl_entropy", "actor/entropy")), "gamma_last": pick(last, ("actor/gamma",)),
                     "paper": arm.paper, "paper_label": arm.paper_label, "step_time_s": step_time(steps)})

    print(f"\nTraining strategies (tiny model; SFT {sft_steps} steps shared; RL {rl_n} steps per RL arm"
          f"{f' at lr {args.rl_lr:g}' if args.rl_lr is not None else ''}; held-out {EVAL_SET}, greedy)")
    print(f"{'arm':<15} {'pass@1':>7} {'95% CI':>13} {'n':>4} {'answered':>8} {'reward':>7} {'entropy':>7}  paper (7B)")
    for row in rows:
        paper = f"{row['paper']:.2f} {row['paper_label']}" if row["paper"] is not None else row["paper_label"]
        print(f"{row['arm']:<15} {100 * row['pass@1']:>6.1f}% {100 * row['ci95'][0]:>5.1f}–{100 * row['ci95'][1]:<5.1f} "
              f"{row['n']:>4} {100 * (row['answered'] or 0):>7.0f}% {_f(row['reward_last']):>7} {_f(row['entropy_last']):>7}  {paper}")
    timed = next((row for row in rows if row["arm"] == "sft_rl_cosine" and row["step_time_s"]), None) or \
        next((row for row in rows if row["step_time_s"]), None)
    if timed:
        print(f"\nWhere an RL step's time goes ({timed['arm']}, verl timers, mean over steps after the first; "
              "agent_loop/* are per-trajectory means inside gen; other = Ray/TransferQueue hops and bookkeeping):")
        total = timed["step_time_s"].get("step")
        for key, v in sorted(timed["step_time_s"].items(), key=lambda kv: -kv[1]):
            share = f" ({100 * v / total:.0f}% of step)" if total and key != "step" and "/" not in key else ""
            print(f"  {key:<45} {v:8.2f} s{share}")
    png = plot(out, per_arm, f"curves{tag}.png")
    table = out / f"table{tag}.json"
    table.write_text(json.dumps({"sft_steps": sft_steps, "rl_steps": rl_n, "rl_lr": args.rl_lr, "rows": rows}, indent=2) + "\n")
    print(f"\ncurves: {png}\ntable: {table}")


if __name__ == "__main__":
    main()

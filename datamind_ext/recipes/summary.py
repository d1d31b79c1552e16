"""The one summary at the end of a recipe run: a table of what was measured, and PNG curves.

Every figure is read back from a stage's own output (the synthesis parquet, LLaMA-Factory's
``trainer_log.jsonl``, the step lines verl's console logger printed, the eval harness's
``summary.json``/``results.jsonl``); a figure a stage did not produce is shown as "-", never
estimated. The footnote states what the held-out sets are, so the table claims no more. Every rate
comes with its n and a 95 % interval, RL's reward with its per-step noise band (from the rollouts
verl dumps), and RL's effect as paired before/after counts on the same held-out tasks; a run whose
SFT was cut short by the wall-clock safety net is marked "not comparable" (``stats.comparability``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datamind_ext.recipes.stats import comparability, mean_band, paired_change, wilson_interval

if TYPE_CHECKING:
    from datamind_ext.recipes.runner import Recipe, StageResult

#: verl console metric names the summary reports per RL step (first present name wins).
RL_COLUMNS: dict[str, tuple[str, ...]] = {
    "reward_mean": ("critic/score/mean", "critic/rewards/mean"),
    "gamma": ("actor/gamma",),
    "sft_loss": ("actor/sft_loss",),
    "pg_loss": ("actor/pg_loss",),
    "void_rate": ("datamind/void_rate", "agent/dm_void/mean", "rollout/dm_void/mean"),
}
#: where the runner has verl dump each step's rollouts (``trainer.rollout_data_dir``), under RUN/rl
ROLLOUTS_DIR = "rollouts"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_METRIC = re.compile(r"([\w/@.\-]+):(-?[\d.]+(?:[eE][-+]?\d+)?|nan|inf)")


def rl_steps(log_text: str) -> list[dict[str, float]]:
    """Every ``step:N - key:value - ...`` line of verl's console logger, as dicts."""
    steps = []
    for line in _ANSI.sub("", log_text).splitlines():
        i = line.find("step:")
        if i < 0 or " - " not in line[i:]:
            continue
        metrics = {k: float(v) for k, v in _METRIC.findall(line[i:])}
        if "step" in metrics:
            steps.append(metrics)
    return steps


def pick(metrics: dict[str, float], names: tuple[str, ...]) -> float | None:
    for n in names:
        if n in metrics:
            return metrics[n]
    return None


def sft_losses(sft_dir: Path) -> list[tuple[int, float]]:
    """(step, loss) from LLaMA-Factory's ``trainer_log.jsonl``."""
    path = sft_dir / "trainer_log.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if "loss" in row and "current_steps" in row:
            out.append((int(row["current_steps"]), float(row["loss"])))
    return out


def sft_time_budget(sft_dir: Path) -> dict[str, Any] | None:
    """The SFT stage's time-budget report (``datamind.max_train_s``), if it had one."""
    from datamind_ext.sft.config import TIME_BUDGET_FILE

    path = sft_dir / TIME_BUDGET_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def categories(parquet: Path) -> Counter[str]:
    import pandas as pd

    if not parquet.is_file():
        return Counter()
    return Counter(str(e.get("category", "unknown")) for e in pd.read_parquet(parquet, columns=["extra_info"]).extra_info)


def rollout_scores(rl_dir: Path) -> dict[int, list[float]]:
    """Per RL step, every rollout's score, from the ``{step}.jsonl`` files verl dumps to
    ``trainer.rollout_data_dir`` (the runner points it at ``RUN/rl/rollouts``)."""
    out: dict[int, list[float]] = {}
    for path in (rl_dir / ROLLOUTS_DIR).glob("*.jsonl"):
        if path.stem.isdigit():
            out[int(path.stem)] = [float(json.loads(x)["score"]) for x in path.read_text().splitlines() if x.strip()]
    return out


def eval_figures(out_dir: Path) -> dict[str, Any] | None:
    """pass@1 with its 95 % interval, items, the share of episodes that ended in an ``<answer>``
    and each task's verdict (``correct``: item → bool, for paired before/after counts) of one eval run."""
    summ = out_dir / "summary.json"
    if not summ.is_file():
        return None
    data = json.loads(summ.read_text())
    scorer, rule = next(iter(data["overall"].items()))  # the benchmark's primary scorer comes first
    rows = [json.loads(x) for x in (out_dir / "results.jsonl").read_text().splitlines() if x.strip()] \
        if (out_dir / "results.jsonl").is_file() else []
    answered = sum(r.get("answer") is not None for r in rows) / len(rows) if rows else None
    correct = {f"{r['item_id']}#{r.get('run', 0)}": bool((r.get("scores", {}).get(scorer) or {}).get("correct"))
               for r in rows}
    n = int(rule["items"])
    ci = list(wilson_interval(round(rule["pass@1"] * n), n)) if n else None
    return {"pass@1": rule["pass@1"], "items": n, "ci95": ci, "answered": answered, "correct": correct}


def _short(path: str, run_dir: Path) -> str:
    p = Path(path)
    return str(p.relative_to(run_dir)) if p.is_relative_to(run_dir) else str(p)


def _rate(f: dict[str, Any]) -> str:
    ci = f.get("ci95")
    return f"{100 * f['pass@1']:.1f}% [{100 * ci[0]:.0f}–{100 * ci[1]:.0f}] (n={f['items']})" if ci \
        else f"{100 * f['pass@1']:.1f}% (n={f['items']})"


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}%" if pct else f"{v:.4g}"


def _plots(run_dir: Path, sft: list[tuple[int, float]], steps: list[dict[str, float]],
           evals: dict[str, dict[str, Any]], bands: dict[int, dict[str, Any]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    if sft:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot([s for s, _ in sft], [loss for _, loss in sft])
        ax.set(xlabel="SFT step", ylabel="loss", title="SFT loss (LLaMA-Factory)", yscale="log")
        fig.tight_layout()
        fig.savefig(run_dir / "sft_loss.png", dpi=110)
        plt.close(fig)
        written.append(run_dir / "sft_loss.png")
    if steps:
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
        x = [int(s["step"]) for s in steps]
        for ax, keys, title in ((axes[0], ("reward_mean",), "reward mean"), (axes[1], ("sft_loss", "pg_loss"), "losses"),
                                (axes[2], ("gamma", "void_rate"), "γ and void rate")):
            for k in keys:
                ys = [pick(s, RL_COLUMNS[k]) for s in steps]
                if any(y is not None for y in ys):
                    ax.plot(x, [float("nan") if y is None else y for y in ys], marker="o", label=k)
            ax.set(xlabel="RL step", title=title)
            ax.legend()
        banded = [int(s["step"]) for s in steps if int(s["step"]) in bands and bands[int(s["step"])]["n"] > 1]
        if banded:
            lo = [bands[i]["mean"] - bands[i]["half_width"] for i in banded]
            hi = [bands[i]["mean"] + bands[i]["half_width"] for i in banded]
            axes[0].fill_between(banded, lo, hi, alpha=0.25, label="95% band of the mean")
            axes[0].legend()
        fig.tight_layout()
        fig.savefig(run_dir / "rl_curves.png", dpi=110)
        plt.close(fig)
        written.append(run_dir / "rl_curves.png")
    if evals:
        sets = sorted({s for per in evals.values() for s in per})
        ckpts = list(evals)
        fig, ax = plt.subplots(figsize=(5.5, 3.2))
        width = 0.8 / max(1, len(sets))
        for j, name in enumerate(sets):
            # a set a checkpoint was not evaluated on (eval.checkpoint_sets) gets no bar, not a 0 % one
            ys = [100 * evals[c][name]["pass@1"] if name in evals[c] else float("nan") for c in ckpts]
            ax.bar([i + j * width for i in range(len(ckpts))], ys, width, label=name)
        ax.set_xticks([i + width * (len(sets) - 1) / 2 for i in range(len(ckpts))], ckpts)
        ax.set(ylabel="pass@1 (%)", title="held-out synthesized tasks")
        ax.legend()
        fig.tight_layout()
        fig.savefig(run_dir / "pass_rates.png", dpi=110)
        plt.close(fig)
        written.append(run_dir / "pass_rates.png")
    return written


#: verl's top-level per-step timers (``timing_s/NAME``, consecutive phases of one step) and, within
#: ``gen``, the agent loop's per-trajectory means (model generation, interpreter calls, reward)
STEP_PHASES = ("gen", "reward", "old_log_prob", "ref", "adv", "update_actor", "update_weights")
AGENT_PHASES = ("agent_loop/generate_sequences/mean", "agent_loop/tool_calls/mean", "agent_loop/compute_score/mean")


def step_time(steps: list[dict[str, float]]) -> dict[str, float]:
    """Where an RL step's time goes: each timer's mean over the steps after the first (the first
    also warms up), and ``other`` = the step minus its timed phases: whatever verl does not time
    (Ray and TransferQueue hops, rollout scheduling, the rollout dump, logging)."""
    use = steps[1:] or steps
    out: dict[str, float] = {}
    for name in ("step", *STEP_PHASES, *AGENT_PHASES):
        vals = [v for s in use if (v := pick(s, (f"timing_s/{name}", name))) is not None]
        if vals:
            out[name] = sum(vals) / len(vals)
    if "step" in out:
        out["other"] = out["step"] - sum(out.get(n, 0.0) for n in STEP_PHASES)
    return out


def _rl_effect(evals: dict[str, dict[str, Any]], sets: list[str]) -> list[str]:
    """Held-out figures before (SFT) and after RL side by side, with paired flip counts."""
    if "sft" not in evals or "rl" not in evals:
        return []
    md = ["", "## RL's effect on the held-out sets (same tasks before and after RL)", "",
          "| set | after SFT | after RL | tasks gained | tasks lost | verdict |", "|---|---|---|---|---|---|"]
    for h in sets:
        before, after = evals["sft"].get(h), evals["rl"].get(h)
        if not before or not after:
            continue
        ch = paired_change(before["correct"], after["correct"])
        verdict = "within noise" if ch["within_noise"] else ("better" if ch["gained"] > ch["lost"] else "WORSE")
        md.append(f"| {h} | {_rate(before)} | {_rate(after)} | {ch['gained']} | {ch['lost']} | {verdict} (n={ch['n']}) |")
    return md


def write_summary(r: Recipe, results: list[StageResult], *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Print the summary table and write ``summary.md``, ``summary.json`` and the plots in the run folder."""
    run_dir = r.run_dir
    heldout = [h.name for h in r.spec.synth.heldout]
    train_cats = categories(r.synth_dir / "export" / "rl" / "train.parquet")
    held_cats = {h: categories(r.heldout_dir(h) / "synth" / "export" / "rl" / "train.parquet") for h in heldout}
    sft = sft_losses(r.sft_dir)
    rl_log = r.rl_dir / "log.txt"
    steps = rl_steps(rl_log.read_text(errors="replace")) if rl_log.is_file() else []
    bands = {step: mean_band(v) for step, v in rollout_scores(r.rl_dir).items() if v}

    sets = r.spec.eval_sets()
    evals = {c: {h: eval_figures(run_dir / "eval" / c / h) for h in r.spec.eval_sets(c)} for c in r.spec.eval.checkpoints}
    evals = {c: {h: v for h, v in per.items() if v} for c, per in evals.items() if any(per.values())}
    budget = sft_time_budget(r.sft_dir)
    comparable, why_not = comparability(budget)

    md = [f"# {r.spec.name}: run summary", "", f"Run folder: {run_dir}", ""]
    if not comparable:
        md += [f"**NOT COMPARABLE**: {why_not}.", ""]
    md += ["| stage | status | seconds | outputs |", "|---|---|---|---|"]
    md += [f"| {s.name} | {s.status} | {s.seconds:.0f} | {', '.join(_short(o, run_dir) for o in s.outputs)} |" for s in results]
    md += ["", "## Tasks by category (synthesized)", "", "| category | train | " + " | ".join(heldout) + " |",
           "|---|---|" + "---|" * len(heldout)]
    for cat in sorted(set(train_cats) | {c for v in held_cats.values() for c in v}):
        md.append(f"| {cat} | {train_cats.get(cat, 0)} | " + " | ".join(str(held_cats[h].get(cat, 0)) for h in heldout) + " |")
    md.append(f"| **total** | {sum(train_cats.values())} | " + " | ".join(str(sum(held_cats[h].values())) for h in heldout) + " |")
    md += ["", "## SFT (LLaMA-Factory)", ""]
    md.append(f"loss first {_fmt(sft[0][1])} (step {sft[0][0]}), last {_fmt(sft[-1][1])} (step {sft[-1][0]})"
              if sft else "no SFT loss logged")
    if budget:
        md.append(f"(sized by steps: {budget['steps_done']} of {budget['max_steps']} steps in {budget['elapsed_s']:.0f} s; "
                  + ("the wall-clock safety net of " f"{budget['max_train_s']:.0f} s ended it early: not comparable)"
                     if budget["stopped_early"] else f"the wall-clock safety net of {budget['max_train_s']:.0f} s did not fire)"))
    md += ["", "## RL (verl main_ppo)", "",
           "| step | reward mean | reward 95% band (n) | γ | sft_loss | pg_loss | void rate |", "|---|---|---|---|---|---|---|"]
    for s in steps:
        b = bands.get(int(s["step"]))
        band = f"±{b['half_width']:.3g} (n={b['n']})" if b and b["n"] > 1 else "-"
        cells = [_fmt(pick(s, RL_COLUMNS["reward_mean"])), band]
        cells += [_fmt(pick(s, RL_COLUMNS[k])) for k in ("gamma", "sft_loss", "pg_loss", "void_rate")]
        md.append(f"| {int(s['step'])} | " + " | ".join(cells) + " |")
    if not steps:
        md.append("| - | - | - | - | - | - | - |")
    timing = step_time(steps)
    if "step" in timing:
        md += ["", f"Step time (mean over steps {'2' if len(steps) > 1 else '1'}..{len(steps)}): {timing['step']:.1f} s = "
               + ", ".join(f"{n} {timing[n]:.1f} s" for n in (*STEP_PHASES, "other") if n in timing)
               + (" (per trajectory, inside gen: " + ", ".join(f"{n.split('/')[1]} {timing[n]:.2f} s" for n in AGENT_PHASES
                                                              if n in timing) + ")" if any(n in timing for n in AGENT_PHASES) else "")]
    md += ["", "## pass@1 [95% interval] (primary scorer; held-out sets: numbers within 3 %) and share of episodes "
           "with an answer", "",
           "| checkpoint | " + " | ".join(f"{h} pass@1 | {h} answered" for h in sets) + " |",
           "|---|" + "---|---|" * len(sets)]
    for c, per in evals.items():
        cells = []
        for h in sets:
            f = per.get(h)
            cells += [_rate(f) if f else "-", _fmt(f["answered"], True) if f else "-"]
        md.append(f"| {c} | " + " | ".join(cells) + " |")
    md += _rl_effect(evals, sets)
    kinds = {h.name: h.kind for h in r.spec.synth.heldout}
    md += ["", "Held-out sets are tasks synthesized over new tables built from the training files: "
           + "; ".join(f"`{n}` = {'same file and column names, new values' if k == 'fresh_tables' else 'every file and column renamed to words absent from training, new values'}"
                       for n, k in kinds.items())
           + ". One run per checkpoint; intervals are 95 % Wilson intervals; RL's verdict is a sign test on the "
           "tasks that flipped."]
    plots = _plots(run_dir, sft, steps, evals, bands)
    md += ["", "Plots: " + ", ".join(str(p) for p in plots) if plots else "No plots (no curves measured)."]
    text = "\n".join(md) + "\n"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.md").write_text(text)
    summary = {"recipe": r.spec.name, "run_dir": str(run_dir), "comparable": comparable, "not_comparable_reason": why_not or None,
               "stages": [s.__dict__ for s in results], "tasks_by_category": {"train": dict(train_cats), **{h: dict(v) for h, v in held_cats.items()}},
               "sft_loss": {"first": sft[0][1], "last": sft[-1][1], "steps": sft[-1][0]} if sft else None,
               "sft_time_budget": budget, "rl_step_time_s": timing,
               "rl_steps": [{k: pick(s, RL_COLUMNS[k]) for k in RL_COLUMNS} | {"step": int(s["step"])}
                            | {"reward_band": bands.get(int(s["step"]))} for s in steps],
               "eval": {c: {h: {k: v for k, v in f.items() if k != "correct"} for h, f in per.items()} for c, per in evals.items()},
               "rl_effect": {h: paired_change(evals["sft"][h]["correct"], evals["rl"][h]["correct"])
                             for h in sets if h in evals.get("sft", {}) and h in evals.get("rl", {})},
               "plots": [str(p) for p in plots]}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    log("")
    log(text)
    log(f"summary: {run_dir / 'summary.md'} and summary.json")
    return summary

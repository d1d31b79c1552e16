"""The run summary's figures: intervals, reward noise bands, paired before/after RL, "not comparable".

The summary is tested on a run folder holding the files each stage writes (LLaMA-Factory's
``trainer_log.jsonl`` and our ``time_budget.json``, verl's console log and rollout dumps, the eval
harness's ``summary.json``/``results.jsonl``), in the formats those stages write them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from datamind_ext.recipes.runner import Recipe, StageResult
from datamind_ext.recipes.stats import comparability, mean_band, paired_change, wilson_interval
from datamind_ext.recipes.summary import ROLLOUTS_DIR, write_summary
from datamind_ext.sft.config import TIME_BUDGET_FILE

QUICKSTART = Path(__file__).resolve().parents[1] / "recipes" / "quickstart"


def test_wilson_interval_brackets_the_rate_and_stays_in_unit_range() -> None:
    lo, hi = wilson_interval(30, 50)
    assert lo < 0.6 < hi and hi - lo == pytest.approx(0.262, abs=0.005)  # textbook value for 30/50
    assert wilson_interval(0, 40)[0] == 0.0 and 0 < wilson_interval(0, 40)[1] < 0.1
    assert wilson_interval(40, 40)[1] == 1.0
    # n ≈ 150 keeps the half-width under 8 points at 60 %: the quickstart's sizing claim
    lo, hi = wilson_interval(90, 150)
    assert (hi - lo) / 2 < 0.08
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_mean_band_is_the_95_percent_half_width_of_the_mean() -> None:
    b = mean_band([1.0, -1.0, 1.0, -1.0])
    assert b["mean"] == 0.0 and b["n"] == 4
    assert b["sd"] == pytest.approx(math.sqrt(4 / 3))
    assert b["half_width"] == pytest.approx(1.96 * math.sqrt(4 / 3) / 2)
    assert math.isinf(mean_band([0.5])["half_width"])  # one value: no band


def test_paired_change_counts_flips_and_calls_small_nets_noise() -> None:
    before = {f"t{i}": i < 10 for i in range(40)}
    same = paired_change(before, before)
    assert same == {"n": 40, "gained": 0, "lost": 0, "within_noise": True}
    slightly = dict(before, t10=True, t11=True, t0=False)  # +2 -1
    assert paired_change(before, slightly) == {"n": 40, "gained": 2, "lost": 1, "within_noise": True}
    much_worse = {k: False for k in before}
    assert paired_change(before, much_worse) == {"n": 40, "gained": 0, "lost": 10, "within_noise": False}
    assert paired_change(before, {"t0": True, "other": True})["n"] == 1  # only tasks both runs scored


def test_comparability_follows_the_safety_net() -> None:
    assert comparability(None) == (True, "")
    assert comparability({"stopped_early": False, "max_train_s": 900, "steps_done": 700, "max_steps": 700})[0]
    ok, why = comparability({"stopped_early": True, "max_train_s": 900, "steps_done": 300, "max_steps": 700})
    assert not ok and "300 of 700" in why and "NOT COMPARABLE" in why


def _eval_out(folder: Path, verdicts: list[bool], answered: int) -> None:
    folder.mkdir(parents=True)
    n = len(verdicts)
    (folder / "summary.json").write_text(json.dumps(
        {"benchmark": "synth", "overall": {"rule": {"pass@1": sum(verdicts) / n, "items": n}}}))
    rows = [{"benchmark": "synth", "item_id": f"t{i}", "run": 0, "answer": "1" if i < answered else None,
             "scores": {"rule": {"correct": ok, "value": float(ok)}}} for i, ok in enumerate(verdicts)]
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _run_folder(run: Path, *, stopped_early: bool) -> None:
    (run / "sft").mkdir(parents=True)
    (run / "sft" / "trainer_log.jsonl").write_text(
        "".join(json.dumps({"current_steps": s, "total_steps": 700, "loss": 7.0 / s}) + "\n" for s in (5, 10, 700)))
    (run / "sft" / TIME_BUDGET_FILE).write_text(json.dumps(
        {"max_train_s": 900, "elapsed_s": 900.2 if stopped_early else 500.0, "steps_done": 310 if stopped_early else 700,
         "max_steps": 700, "stopped_early": stopped_early}))
    (run / "rl" / ROLLOUTS_DIR).mkdir(parents=True)
    (run / "rl" / "log.txt").write_text("".join(
        f"(TaskRunnerV1 pid=1) step:{s} - actor/gamma:0.9 - actor/sft_loss:0.5 - actor/pg_loss:0.01 - "
        f"critic/score/mean:{m} - datamind/void_rate:0.0 - timing_s/gen:{9 + s} - timing_s/reward:0.5 - "
        f"timing_s/old_log_prob:1.0 - timing_s/update_actor:3.0 - timing_s/step:{15 + s} - "
        f"agent_loop/tool_calls/mean:0.25\n" for s, m in ((1, 0.5), (2, 0.0))))
    for step, scores in ((1, [1.0, 1.0, 0.0, 0.0]), (2, [1.0, -1.0, 0.0, 0.0])):
        (run / "rl" / ROLLOUTS_DIR / f"{step}.jsonl").write_text(
            "".join(json.dumps({"input": "q", "output": "a", "gts": "1", "score": x, "step": step}) + "\n" for x in scores))
    for name in ("familiar_names", "unseen_names"):
        _eval_out(run / "eval" / "base" / name, [False] * 40, 0)
        _eval_out(run / "eval" / "sft" / name, [i < 20 for i in range(40)], 38)
    _eval_out(run / "eval" / "rl" / "familiar_names", [i < 21 for i in range(40)], 39)  # one task gained
    _eval_out(run / "eval" / "rl" / "unseen_names", [i < 5 for i in range(40)], 39)  # 15 tasks lost


def test_summary_reports_bands_intervals_and_rl_effect(tmp_path: Path) -> None:
    _run_folder(tmp_path, stopped_early=False)
    lines: list[str] = []
    every_set = ["eval.checkpoint_sets.rl=[familiar_names,unseen_names]"]  # the quickstart: rl on familiar_names only
    summary = write_summary(Recipe(QUICKSTART, run_dir=tmp_path, overrides=every_set),
                            [StageResult("sft", "ran", 1.0, [], [])], log=lines.append)
    text = "\n".join(lines)
    assert summary["comparable"] is True and "NOT COMPARABLE" not in text
    assert "did not fire" in text and "700 of 700 steps" in text
    band = summary["rl_steps"][0]["reward_band"]
    assert band["n"] == 4 and band["mean"] == 0.5 and band["half_width"] == pytest.approx(1.96 * math.sqrt(1 / 3) / 2)
    assert f"| 1 | 0.5 | ±{band['half_width']:.3g} (n=4) |" in text
    sft = summary["eval"]["sft"]["familiar_names"]
    assert sft["pass@1"] == 0.5 and sft["answered"] == 0.95 and sft["ci95"][0] < 0.5 < sft["ci95"][1]
    assert "correct" not in sft  # per-task verdicts stay out of summary.json
    assert summary["rl_effect"]["familiar_names"] == {"n": 40, "gained": 1, "lost": 0, "within_noise": True}
    assert summary["rl_effect"]["unseen_names"]["lost"] == 15 and not summary["rl_effect"]["unseen_names"]["within_noise"]
    effect = text[text.index("## RL's effect"):]
    assert "| familiar_names | 50.0% [" in effect and "within noise (n=40)" in effect
    assert "| unseen_names |" in effect and "WORSE" in effect
    assert (tmp_path / "rl_curves.png").stat().st_size > 1000
    # step 2 only (step 1 warms up): 17 s = gen 11 + reward 0.5 + old_log_prob 1 + update 3 + other 1.5
    assert summary["rl_step_time_s"] == {"step": 17.0, "gen": 11.0, "reward": 0.5, "old_log_prob": 1.0,
                                         "update_actor": 3.0, "agent_loop/tool_calls/mean": 0.25, "other": 1.5}
    assert "Step time (mean over steps 2..2): 17.0 s = gen 11.0 s" in text and "tool_calls 0.25 s" in text
    assert json.loads((tmp_path / "summary.json").read_text())["comparable"] is True
    # with the quickstart's eval.checkpoint_sets, rl's unseen_names results on disk (an older run's) are not reported
    summary = write_summary(Recipe(QUICKSTART, run_dir=tmp_path), [], log=lines.append)
    assert set(summary["eval"]["rl"]) == {"familiar_names"} and set(summary["rl_effect"]) == {"familiar_names"}
    assert set(summary["eval"]["sft"]) == {"familiar_names", "unseen_names"} and set(summary["eval"]["base"]) == {"familiar_names"}


def test_summary_marks_a_run_cut_by_the_safety_net_not_comparable(tmp_path: Path) -> None:
    _run_folder(tmp_path, stopped_early=True)
    lines: list[str] = []
    summary = write_summary(Recipe(QUICKSTART, run_dir=tmp_path), [], log=lines.append)
    text = "\n".join(lines)
    assert summary["comparable"] is False and "310 of 700" in summary["not_comparable_reason"]
    assert text.index("**NOT COMPARABLE**") < text.index("| stage |")  # said first, not in a footnote

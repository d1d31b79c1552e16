"""pass@1 and pass@k from per-item results, as the DataMind paper reports them.

pass@1 is the accuracy of each run averaged over the k runs ("avg@k"); pass@k is the share of
questions answered correctly in at least one run. Both are over **every item of the benchmark**
(k runs each): a unit with no result, a failed unit or an unscored verdict counts as wrong, so
a responses file covering 1 of 15 questions cannot report 100 %. ``coverage`` (scored units
over all units) stands beside it, and ``pass@1_scored`` gives the accuracy over the scored
units only. Graded scorers (ROUGE-L) report their mean value the same two ways.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from datamind_ext.evaluation.benchmark import Benchmark
from datamind_ext.evaluation.items import ItemResult


def pass_at(
    results: Iterable[ItemResult], scorer: str, *, item_ids: Iterable[str] | None = None, k: int | None = None
) -> dict[str, Any]:
    """pass@1, pass@k, coverage, per-run accuracies and counts for one scorer.

    ``item_ids``: every item the figures are over (default: those with results); ``k``: runs
    per item (default: the most runs seen).
    """
    results = list(results)
    by_item: dict[str, list[bool]] = defaultdict(list)
    correct_by_run: dict[int, int] = defaultdict(int)
    values: list[float] = []
    unscored = 0
    for r in results:
        s = r.scores.get(scorer)
        if s is None:
            unscored += 1
            continue
        values.append(s.value)
        if s.correct is None:
            unscored += 1
            continue
        by_item[r.item_id].append(s.correct)
        correct_by_run[r.run] += int(s.correct)
    ids = set(item_ids) if item_ids is not None else {r.item_id for r in results}
    k = k or max([r.run + 1 for r in results], default=1)
    units = len(ids) * k
    scored = sum(len(v) for v in by_item.values())
    if values and not by_item:  # a graded metric: no pass/fail verdicts to count
        units_binary = 0
    else:
        units_binary = units
    return {
        "pass@1": sum(correct_by_run.values()) / units_binary if units_binary else None,
        "pass@k": sum(any(by_item.get(i, ())) for i in ids) / len(ids) if ids and units_binary else None,
        # over scored units only, each item weighing the same whatever its number of runs
        "pass@1_scored": sum(sum(v) / len(v) for v in by_item.values()) / len(by_item) if by_item else None,
        "coverage": scored / units if units else None,
        "per_run": {run: correct_by_run.get(run, 0) / len(ids) for run in range(k)} if ids else {},
        "items": len(ids),
        "items_scored": len(by_item),
        "scored": scored,
        "unscored": unscored,
        "mean_value": sum(values) / units if units else None,
        "mean_value_scored": sum(values) / len(values) if values else None,
        "graded_units": len(values),
    }


def answer_rates(results: list[ItemResult], units: int) -> dict[str, Any]:
    """How many units have an answer, are void (no answer, and why), failed, or are missing."""
    void = Counter(r.void_reason for r in results if r.void_reason and not r.error)
    answered = sum(1 for r in results if r.answer is not None and not r.error and not r.void_reason)
    failed = sum(1 for r in results if r.error)
    return {
        "units": units,
        "answered": answered,
        "answered_rate": answered / units if units else None,
        "void": sum(void.values()),
        "void_rate": sum(void.values()) / units if units else None,
        "void_reasons": dict(void.most_common()),
        "failed": failed,
        "missing": max(units - len(results), 0),
    }


def summarize(
    bench: Benchmark,
    results: list[ItemResult],
    *,
    k: int,
    item_categories: dict[str, dict[str, str]],
    notes: list[str],
    run_info: dict,
) -> dict[str, Any]:
    """The summary JSON: overall and per-category figures for every scorer.

    ``item_categories``: every item of the benchmark (id -> its categories); items without a
    result count wrong.
    """
    labels: dict[str, list[str]] = {}
    judges: set[str] = set()
    for r in results:
        for name, s in r.scores.items():
            if s.scorer not in labels.setdefault(name, []):
                labels[name].append(s.scorer)
            if s.judge:
                judges.add(s.judge)
    all_ids = list(item_categories)
    overall = {
        name: {**pass_at(results, name, item_ids=all_ids, k=k), "labels": labels.get(name, [])}
        for name in bench.scorers
    }
    keys = sorted({key for cats in item_categories.values() for key in cats})
    categories: dict[str, dict[str, dict[str, Any]]] = {}
    for key in keys:
        groups: dict[str, list[str]] = defaultdict(list)
        for item_id, cats in item_categories.items():
            groups[cats.get(key, "unknown")].append(item_id)
        categories[key] = {}
        for value, ids in sorted(groups.items()):
            members = set(ids)
            rs = [r for r in results if r.item_id in members]
            categories[key][value] = {name: pass_at(rs, name, item_ids=ids, k=k) for name in bench.scorers}
    errors = [r for r in results if r.error]
    return {
        "benchmark": bench.name,
        "title": bench.title,
        "k": k,
        "primary_scorer": bench.scorers[0],
        "graded_scorers": list(bench.graded_scorers),
        "items_in_benchmark": len(all_ids),
        "items_with_results": len({r.item_id for r in results}),
        "results": len(results),
        "errors": len(errors),
        "first_error": errors[0].error if errors else None,
        "answers": answer_rates(results, len(all_ids) * k),
        "judges": sorted(judges),
        "notes": notes,
        "run": run_info,
        "overall": overall,
        "categories": categories,
    }


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def pass_headers(k: int) -> list[str]:
    """Column names of the pass figures: ``pass@1`` alone when k = 1 (pass@1 = pass@k then)."""
    return ["pass@1"] if k == 1 else ["pass@1", f"pass@{k}"]


def _rate(n: int, units: int) -> str:
    return f"{n} of {units} ({100 * n / units:.1f} %)" if units else f"{n}"


def to_markdown(summary: dict[str, Any]) -> str:
    """The summary table a user reads: one row per scorer, then one table per category key."""
    k = summary["k"]
    graded = set(summary["graded_scorers"])
    a = summary["answers"]
    lines = [
        f"# {summary['title']}",
        "",
        (f"- items: {summary['items_in_benchmark']} in the benchmark, {summary['items_with_results']} with results; "
         f"k = {k} run(s) each, {a['units']} answers expected"),
        (f"- answered: {_rate(a['answered'], a['units'])}; void (no answer): {_rate(a['void'], a['units'])}; "
         f"failed: {a['failed']}; missing: {a['missing']}"),
    ]
    lines += [f"  - void: {n} × {reason}" for reason, n in a["void_reasons"].items()]
    lines += [
        f"- pass@1 = mean over the {k} run(s) of the accuracy over all {summary['items_in_benchmark']} items "
        "(missing, failed or unscored answers count wrong)"
        + (f"; pass@{k} = answered correctly in at least one run" if k > 1 else ""),
        "- coverage = share of answers scored; 'scored only' = accuracy over the scored answers",
        f"- judge: {', '.join(summary['judges']) or 'none (rule-based scoring)'}",
    ]
    lines += [f"- {note}" for note in summary["notes"]]
    if summary["first_error"]:
        lines.append(f"- first error: {summary['first_error']}")
    heads = pass_headers(k)
    lines += ["", "| scorer | how it scores | " + " | ".join(heads) + " | scored only | coverage | unscored |",
              "|---|---|" + "---|" * (len(heads) + 3)]
    for name, m in summary["overall"].items():
        how = ("; ".join(m["labels"]) or "—").replace("|", "\\|")
        if name in graded:
            cells = [f"mean {m['mean_value'] or 0:.4f}"] + ["—"] * (len(heads) - 1)
            scored_only = "—" if m["mean_value_scored"] is None else f"mean {m['mean_value_scored']:.4f}"
            cov = _pct(m["graded_units"] / (m["items"] * k)) if m["items"] else "—"
            lines.append(f"| {name} | {how} | {' | '.join(cells)} | {scored_only} | {cov} | — |")
        else:
            cells = [_pct(m["pass@1"])] + ([_pct(m["pass@k"])] if k > 1 else [])
            lines.append(f"| {name} | {how} | {' | '.join(cells)} | {_pct(m['pass@1_scored'])} | "
                         f"{_pct(m['coverage'])} | {m['unscored']} |")
    binary = [n for n in summary["overall"] if n not in graded]
    for key, groups in summary["categories"].items():
        lines += ["", f"## by {key}", ""]
        header = " | ".join(f"{n} {h}" for n in binary for h in heads)
        lines += [f"| {key} | items | {header} |", "|---|---|" + "---|" * (len(binary) * len(heads))]
        for value, per in groups.items():
            n_items = max(per[n]["items"] for n in binary) if binary else 0
            cells = " | ".join(_pct(per[n][h if h == "pass@1" else "pass@k"]) for n in binary for h in heads)
            lines.append(f"| {value} | {n_items} | {cells} |")
    return "\n".join(lines) + "\n"


def write_summary(out_dir: Path, summary: dict[str, Any]) -> tuple[Path, Path]:
    """``summary.json`` and ``summary.md`` in ``out_dir``."""
    json_path, md_path = out_dir / "summary.json", out_dir / "summary.md"
    json_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(to_markdown(summary), encoding="utf-8")
    return json_path, md_path

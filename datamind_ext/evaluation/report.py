"""pass@1 and pass@k from per-item results, as the DataMind paper reports them.

pass@1 is the accuracy of each run averaged over the k runs ("avg@k", computed per item so an
incomplete run does not tilt it); pass@k is the share of questions answered correctly in at
least one run. Verdicts of ``None`` (a judge that could not
answer, a graded metric) are left out and counted as unscored, never as wrong. Graded scorers
(ROUGE-L) are reported as their mean value.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from datamind_ext.evaluation.benchmark import Benchmark
from datamind_ext.evaluation.items import ItemResult


def pass_at(results: Iterable[ItemResult], scorer: str) -> dict[str, Any]:
    """pass@1 (mean of per-run accuracies), pass@k, per-run accuracies and counts for one scorer."""
    by_run: dict[int, list[bool]] = defaultdict(list)
    by_item: dict[str, list[bool]] = defaultdict(list)
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
        by_run[r.run].append(s.correct)
        by_item[r.item_id].append(s.correct)
    per_run = {run: sum(v) / len(v) for run, v in sorted(by_run.items())}
    # Mean over items of each item's mean over its runs: with every item run k times this is
    # exactly the mean of the per-run accuracies; with gaps (an interrupted run) no item weighs more.
    out: dict[str, Any] = {
        "pass@1": sum(sum(v) / len(v) for v in by_item.values()) / len(by_item) if by_item else None,
        "pass@k": sum(any(v) for v in by_item.values()) / len(by_item) if by_item else None,
        "per_run": per_run,
        "items": len(by_item),
        "scored": sum(len(v) for v in by_run.values()),
        "unscored": unscored,
        "mean_value": sum(values) / len(values) if values else None,
    }
    return out


def summarize(
    bench: Benchmark, results: list[ItemResult], *, k: int, n_items_total: int, notes: list[str], run_info: dict
) -> dict[str, Any]:
    """The summary JSON: overall and per-category figures for every scorer."""
    labels: dict[str, list[str]] = {}
    judges: set[str] = set()
    for r in results:
        for name, s in r.scores.items():
            if s.scorer not in labels.setdefault(name, []):
                labels[name].append(s.scorer)
            if s.judge:
                judges.add(s.judge)
    overall = {name: {**pass_at(results, name), "labels": labels.get(name, [])} for name in bench.scorers}
    keys = sorted({key for r in results for key in r.categories})
    categories: dict[str, dict[str, dict[str, Any]]] = {}
    for key in keys:
        groups: dict[str, list[ItemResult]] = defaultdict(list)
        for r in results:
            groups[r.categories.get(key, "unknown")].append(r)
        categories[key] = {
            value: {name: pass_at(rs, name) for name in bench.scorers} for value, rs in sorted(groups.items())
        }
    errors = [r for r in results if r.error]
    return {
        "benchmark": bench.name,
        "title": bench.title,
        "k": k,
        "primary_scorer": bench.scorers[0],
        "graded_scorers": list(bench.graded_scorers),
        "items_in_benchmark": n_items_total,
        "items_with_results": len({r.item_id for r in results}),
        "results": len(results),
        "errors": len(errors),
        "first_error": errors[0].error if errors else None,
        "judges": sorted(judges),
        "notes": notes,
        "run": run_info,
        "overall": overall,
        "categories": categories,
    }


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def to_markdown(summary: dict[str, Any]) -> str:
    """The summary table a user reads: one row per scorer, then one table per category key."""
    k = summary["k"]
    graded = set(summary["graded_scorers"])
    lines = [
        f"# {summary['title']}",
        "",
        (
            f"- items: {summary['items_with_results']} of {summary['items_in_benchmark']} scored, k = {k} run(s), "
            f"{summary['results']} results, {summary['errors']} errors"
        ),
        f"- pass@1 = mean over the {k} runs of the accuracy; pass@{k} = answered correctly in at least one run",
        f"- judge: {', '.join(summary['judges']) or 'none (rule-based scoring)'}",
    ]
    lines += [f"- {note}" for note in summary["notes"]]
    if summary["first_error"]:
        lines.append(f"- first error: {summary['first_error']}")
    lines += ["", f"| scorer | how it scores | pass@1 | pass@{k} | scored | unscored |", "|---|---|---|---|---|---|"]
    for name, m in summary["overall"].items():
        how = ("; ".join(m["labels"]) or "—").replace("|", "\\|")
        if name in graded:
            lines.append(f"| {name} | {how} | mean {m['mean_value'] or 0:.4f} | — | {m['scored']} | — |")
        else:
            lines.append(
                f"| {name} | {how} | {_pct(m['pass@1'])} | {_pct(m['pass@k'])} | {m['scored']} | {m['unscored']} |"
            )
    binary = [n for n in summary["overall"] if n not in graded]
    for key, groups in summary["categories"].items():
        lines += ["", f"## by {key}", ""]
        header = " | ".join(f"{n} pass@1 | {n} pass@{k}" for n in binary)
        lines += [f"| {key} | items | {header} |", "|---|---|" + "---|---|" * len(binary)]
        for value, per in groups.items():
            n_items = max(per[n]["items"] for n in binary) if binary else 0
            cells = " | ".join(f"{_pct(per[n]['pass@1'])} | {_pct(per[n]['pass@k'])}" for n in binary)
            lines.append(f"| {value} | {n_items} | {cells} |")
    return "\n".join(lines) + "\n"


def write_summary(out_dir: Path, summary: dict[str, Any]) -> tuple[Path, Path]:
    """``summary.json`` and ``summary.md`` in ``out_dir``."""
    json_path, md_path = out_dir / "summary.json", out_dir / "summary.md"
    json_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(to_markdown(summary), encoding="utf-8")
    return json_path, md_path

"""Quality audit of a synthesized task set (programmatic or LLM): what an analyst would reject.

Checks per task, each named (the same names drop trajectories in ``synth filter``):

* ``measure_misuse`` — a statistic (mean, sum, correlation, ratio, threshold, ...) taken over a
  column whose profiled role is an identifier/row index, a year, a 0/1 flag or an ordinal code.
  Programmatic tasks list the columns each step uses as a quantity; for other tasks the code is
  scanned for ``['col'].mean()``-style calls.
* ``nan_answer`` / ``zero_answer`` — a ground truth that is NaN/inf or exactly zero (at 2 decimals).
* ``unverified_steps`` (reported, not filtered) — a composed task whose steps were not ablated
  when it was made, so that every step matters is not known.

Plus set-level figures: template diversity (distinct question templates, the share of the ten
most common), answers by type, tasks per category, rejected candidates per rule.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

from datamind_ext.synthesis.profile import TableProfile
from datamind_ext.synthesis.programs import TaskSpec
from datamind_ext.synthesis.records import ProfileRecord, TaskRecord
from datamind_ext.synthesis.store import read_records

#: pandas calls that treat a column as a quantity
_STAT_CALL = re.compile(r"\[\s*(['\"])(?P<col>[^'\"]+)\1\s*\]\s*\.\s*(?:mean|sum|std|var|median|skew|kurt|corr|cumsum|quantile)\s*\(")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?![\w])")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
MISUSED_ROLES = frozenset({"identifier", "year", "binary", "ordinal", "date", "text", "category"})


def roles_by_table(profiles: list[TableProfile]) -> dict[str, dict[str, str]]:
    """{table key: {column: role}} of the profiled tables."""
    return {p.key: {c.name: c.role for c in p.columns} for p in profiles}


def measures_used(spec: TaskSpec) -> list[str]:
    """Columns a task uses as quantities: declared by programmatic steps, else scanned from code."""
    declared = [m for link in spec.chain for m in link.get("measures") or []]
    if declared or spec.source == "programmatic":
        return declared
    code = "\n".join(c.code for c in spec.cells)
    return [m.group("col") for m in _STAT_CALL.finditer(code)]


def _is_number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def task_problems(spec: TaskSpec, gold: str | None, roles: dict[str, str]) -> list[str]:
    """Every named check the task fails (empty: the task passes)."""
    problems = []
    misused = [m for m in measures_used(spec) if roles.get(m) in MISUSED_ROLES]
    if misused:
        problems.append("measure_misuse")
    x = _is_number(gold or "")
    if (gold or "").strip().lower() in ("", "nan", "none", "inf", "-inf", "nat", "<na>") or (x is not None and not math.isfinite(x)):
        problems.append("nan_answer")
    elif x is not None and round(x, 2) == 0 and spec.answer_kind != "label":  # a label "0" is a group key
        problems.append("zero_answer")
    return problems


def question_template(question: str, columns: list[str], label: str) -> str:
    """The question with its file, column names, quoted values and numbers masked."""
    t = question.replace(label, "<file>")
    for c in sorted(columns, key=len, reverse=True):
        if len(c) > 1:
            t = re.sub(rf"(?<![\w]){re.escape(c)}(?![\w])", "<col>", t)
    t = _QUOTED.sub("<val>", t)
    return _NUMBER.sub("<num>", t)


def answer_type(gold: str) -> str:
    g = gold.strip().lower()
    if g in ("yes", "no", "true", "false"):
        return "yes/no"
    x = _is_number(g)
    if x is None:
        return "label"
    return "integer" if re.fullmatch(r"[-+]?\d+", g) else "decimal"


def audit_tasks(tasks: list[TaskRecord], profiles: list[TableProfile]) -> dict[str, Any]:
    """Figures over the kept tasks (``ok`` records of ``tasks.jsonl``), rejections by rule."""
    roles = roles_by_table(profiles)
    cols = {k: list(v) for k, v in roles.items()}
    kept = [t for t in tasks if t.status == "ok"]
    problems: Counter[str] = Counter()
    templates: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    for t in kept:
        spec = t.task
        for p in task_problems(spec, t.gold, roles.get(spec.table_key, {})):
            problems[p] += 1
            examples.setdefault(p, []).append(spec.question)
        composed = [link for link in spec.chain if link.get("op")]
        if len(composed) > 1 and not spec.verify_code:
            problems["unverified_steps"] += 1
        templates[question_template(spec.question, cols.get(spec.table_key, []), spec.table_label)] += 1
    n = len(kept)
    top10 = sum(c for _, c in templates.most_common(10))
    rejected = Counter((t.reason or "unknown") for t in tasks if t.status == "rejected")
    by_rule: Counter[str] = Counter()
    for reason, c in rejected.items():
        parts = reason.split(":")
        by_rule[":".join(parts[:2]) if parts[0] in ("ill_posed", "step_without_effect") else parts[0]] += c
    return {
        "tasks": n,
        "checks": {name: {"count": problems[name], "share": round(problems[name] / n, 4) if n else 0.0,
                          "examples": examples.get(name, [])[:3]}
                   for name in ("measure_misuse", "nan_answer", "zero_answer", "unverified_steps")},
        "templates": {"distinct": len(templates), "top10_share": round(top10 / n, 4) if n else 0.0,
                      "most_common": [{"template": k, "count": v} for k, v in templates.most_common(5)]},
        "answers_by_type": dict(Counter(answer_type(t.gold or "") for t in kept).most_common()),
        "by_category": dict(sorted(Counter(t.task.category for t in kept).items())),
        "by_depth": dict(sorted(Counter(str(t.task.depth) for t in kept).items())),
        "rejected_by_rule": dict(by_rule.most_common()),
    }


def audit_markdown(report: dict[str, Any]) -> str:
    lines = ["# Synthesis audit", "", f"{report['tasks']} kept tasks.", "", "## Checks", "",
             "| check | tasks | share | example |", "|---|---|---|---|"]
    for name, c in report["checks"].items():
        ex = c["examples"][0].replace("|", "/")[:120] if c["examples"] else ""
        lines.append(f"| {name} | {c['count']} | {c['share']:.1%} | {ex} |")
    t = report["templates"]
    lines += ["", "## Question templates", "", f"{t['distinct']} distinct; the ten most common make {t['top10_share']:.1%}.", ""]
    lines += [f"- {m['count']} × {m['template'][:160]}" for m in t["most_common"]]
    for title, key in (("Answers by type", "answers_by_type"), ("Tasks by category", "by_category"),
                       ("Tasks by depth (effective steps)", "by_depth"), ("Rejected candidates by rule", "rejected_by_rule")):
        lines += ["", f"## {title}", "", "| | count |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in report[key].items()]
    return "\n".join(lines) + "\n"


def run_audit(out: str | Path) -> dict[str, Any]:
    """Audit ``OUT/tasks.jsonl``; write ``OUT/audit.md`` and ``OUT/audit.json``."""
    from datamind_ext.errors import UserError

    folder = Path(out)
    if not (folder / "tasks.jsonl").exists():
        raise UserError(f"no tasks in {folder}: run `datamind-ext synth tasks` first")
    profiles = [p for rec in read_records(folder / "profiles.jsonl", ProfileRecord) for p in rec.profiles]
    report = audit_tasks(list(read_records(folder / "tasks.jsonl", TaskRecord)), profiles)
    (folder / "audit.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    (folder / "audit.md").write_text(audit_markdown(report), encoding="utf-8")
    return report

"""The DataMind paper's answer protocol: an LLM judge when one is configured, else a rule.

The paper scores DABench and TableBench with a gpt-4o-mini judge (numbers within 3 %), not
with each benchmark's own rule. Runs without a judge fall back to the rule (3 % relative
tolerance) and say so in the scorer label, so the two are never mixed up in a report.
"""

from __future__ import annotations

from datamind_ext.evaluation.benchmark import ScoringContext
from datamind_ext.evaluation.items import EvalItem, Score


async def judge_or_rule(
    item: EvalItem,
    answer: str | None,
    *,
    reference: str,
    rule_correct: bool,
    rule_reason: str,
    rule_label: str,
    ctx: ScoringContext,
    detail: dict | None = None,
) -> Score:
    """The paper-protocol verdict: the judge's if a judge is configured, the rule's otherwise.

    A missing answer is wrong without asking the judge. A judge that cannot answer gives
    ``correct=None`` (excluded from pass rates and counted as unscored), never a silent 0.
    """
    detail = dict(detail or {})
    detail["rule_correct"] = rule_correct
    if ctx.judge is None or answer is None:
        return Score(
            correct=rule_correct,
            value=float(rule_correct),
            scorer=f"paper-protocol: {rule_label}" + ("" if ctx.judge is None else " (no answer, judge not asked)"),
            reason=rule_reason,
            detail=detail,
        )
    verdict = await ctx.judge.judge(question=item.question, reference=reference, answer=answer)
    if verdict.correct is None and verdict.fallback:
        return Score(
            correct=rule_correct,
            value=float(rule_correct),
            scorer=f"paper-protocol: {rule_label} (judge gave no verdict)",
            judge=verdict.judge,
            reason=f"{rule_reason}; {verdict.reason}",
            detail=detail,
        )
    return Score(
        correct=verdict.correct,
        value=float(bool(verdict.correct)),
        scorer="paper-protocol: LLM judge",
        judge=verdict.judge,
        reason=verdict.reason,
        detail=detail,
    )

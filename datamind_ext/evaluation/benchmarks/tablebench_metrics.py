"""TableBench's own per-question metrics, restated so our numbers compare with its leaderboard.

TableBench (``eval_tablebench_script.py``, ``metrics/custom_em_metric.py``) scores the parsed
"Final Answer" by question type: fact checking, numerical reasoning and impact analysis by
exact match (EM); correlation, trend and statistical analysis by EM with a 10 % relative error
margin; the other data-analysis subtypes by ROUGE-L. EM is graded: the reference is split on
commas and each position earns ``1 / #parts`` when the prediction's part at the same position
matches. Numbers match after rounding both to the fewest decimals among the reference's
numbers (half up); percentages match as fractions to four decimals; text must be identical.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from datamind_ext.evaluation.rouge import rouge_l_f

_NUMBER = re.compile(r"^-?\d+(\.\d+)?%?$")
EM_WITH_ERROR_SUBTYPES = ("CorrelationAnalysis", "TrendForecasting", "StatisticalAnalysis")
EM_SUBTYPES = ("ImpactAnalysis",)
EM_TYPES = ("FactChecking", "NumericalReasoning")
RELATIVE_ERROR = 0.10


def _is_number(text: str) -> bool:
    return bool(_NUMBER.match(text.strip()))


def _as_decimal(text: str) -> Decimal:
    if text.endswith("%"):
        return (Decimal(text[:-1]) / Decimal(100)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    return Decimal(text)


def _rounded(value: Decimal, decimals: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def _parts(text: str) -> list[str]:
    return [p.strip() for p in text.split(",")]


def exact_match(prediction: str, reference: str) -> float:
    """Graded positional EM of one answer (TableBench's EM)."""
    refs, preds = _parts(reference), _parts(prediction)
    plain = [r for r in refs if _is_number(r) and not r.endswith("%")]
    decimals = min((len(r.split(".")[1]) if "." in r else 0 for r in plain), default=0)
    credit = 0.0
    for i, ref in enumerate(refs):
        if i >= len(preds):
            break
        pred = preds[i]
        try:
            if not _is_number(ref):
                hit = pred == ref
            elif ref.endswith("%"):
                hit = _as_decimal(pred) == _as_decimal(ref)
            else:
                hit = _rounded(_as_decimal(pred), decimals) == _rounded(_as_decimal(ref), decimals)
        except (InvalidOperation, ValueError):
            hit = False
        credit += hit / len(refs)
    return credit


def exact_match_with_error(prediction: str, reference: str, relative_error: float = RELATIVE_ERROR) -> float:
    """Graded positional EM where numbers may differ by ``relative_error`` (TableBench's EM_with_error_10)."""
    refs, preds = _parts(reference), _parts(prediction)
    credit = 0.0
    for i, ref in enumerate(refs):
        if i >= len(preds):
            break
        pred = preds[i]
        try:
            if not _is_number(ref):
                hit = pred == ref
            else:
                r, p = _as_decimal(ref), _as_decimal(pred)
                hit = p == r if r == 0 else abs(r - p) / abs(r) <= Decimal(str(relative_error))
        except (InvalidOperation, ValueError):
            hit = False
        credit += hit / len(refs)
    return credit


def official_metric(qtype: str, qsubtype: str) -> str:
    """Which metric TableBench applies to a question type: 'EM', 'EM_with_error_10' or 'ROUGE-L'."""
    if qtype in EM_TYPES or qsubtype in EM_SUBTYPES:
        return "EM"
    if qsubtype in EM_WITH_ERROR_SUBTYPES:
        return "EM_with_error_10"
    return "ROUGE-L"


def official_score(prediction: str, reference: str, qtype: str, qsubtype: str) -> tuple[str, float]:
    """(metric name, value in [0, 1]) for one prediction."""
    metric = official_metric(qtype, qsubtype)
    if metric == "EM":
        return metric, exact_match(prediction, reference)
    if metric == "EM_with_error_10":
        return metric, exact_match_with_error(prediction, reference)
    return metric, rouge_l_f(prediction, reference)

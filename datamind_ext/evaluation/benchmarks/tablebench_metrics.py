"""TableBench's own per-question metrics, restated so our numbers compare with its leaderboard.

TableBench (``parse_tablebench_instruction_response_script.py``, ``metrics/qa_metrics.py``,
``metrics/custom_em_metric.py``) first parses the answer (the first ``Final Answer: ...`` line
of the output; none: the empty string), then normalises prediction and reference alike
(lower-cased; punctuation removed, so "1,062" is "1062", "35.0" is "350" and "12%" is "12";
articles removed; whitespace collapsed), then scores by question type: fact checking, numerical reasoning and impact analysis by
exact match (EM); correlation, trend and statistical analysis by EM with a 10 % relative error
margin; the other data-analysis subtypes by ROUGE-L. EM is graded: the reference is split on
commas and each position earns ``1 / #parts`` when the prediction's part at the same position
matches. Numbers match after rounding both to the fewest decimals among the reference's
numbers (half up); percentages match as fractions to four decimals; text must be identical.
"""

from __future__ import annotations

import re
import string
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from datamind_ext.evaluation.rouge import rouge_l_f

_NUMBER = re.compile(r"^-?\d+(\.\d+)?%?$")
EM_WITH_ERROR_SUBTYPES = ("CorrelationAnalysis", "TrendForecasting", "StatisticalAnalysis")
EM_SUBTYPES = ("ImpactAnalysis",)
EM_TYPES = ("FactChecking", "NumericalReasoning")
#: Percent, compared as TableBench does: a Decimal error against the float ``10 / 100``.
ERROR_RANGE_PCT = 10
_FINAL_ANSWER = re.compile(r"Final Answer: (.+)")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def parse_final_answer(prediction: str) -> str:
    """TableBench's DP/CoT parser: the rest of the first ``Final Answer: `` line, else ''."""
    m = _FINAL_ANSWER.search(prediction)
    return m.group(1) if m else ""


def normalize_answer(text: str) -> str:
    """TableBench's normalisation, applied to prediction and reference before every metric."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


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


def exact_match_with_error(prediction: str, reference: str, error_range_pct: float = ERROR_RANGE_PCT) -> float:
    """Graded positional EM where numbers may differ by ``error_range_pct`` % (TableBench's EM_with_error_10)."""
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
                hit = p == r if r == 0 else abs(r - p) / abs(r) <= error_range_pct / 100
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
    """(metric name, value in [0, 1]) for one parsed prediction, both sides normalised first."""
    metric = official_metric(qtype, qsubtype)
    prediction, reference = normalize_answer(prediction), normalize_answer(reference)
    if metric == "EM":
        return metric, exact_match(prediction, reference)
    if metric == "EM_with_error_10":
        return metric, exact_match_with_error(prediction, reference)
    return metric, rouge_l_f(prediction, reference)

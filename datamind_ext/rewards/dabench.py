"""DABench-style closed-form answers: ``@name[value]`` sub-answers, all of which must match.

Two rules:

* ``official=True`` reproduces the benchmark's own closed-form scorer (InfiAgent-DABench
  ``eval_closed_form.py``): sub-answers are read with the pattern ``@(\\w+)\\[(.*?)\\]`` from the
  whole response (a repeated name keeps its last value), and each gold sub-answer is correct if
  the predicted string is identical, or both read as Python floats within 1e-6. Use it to report
  numbers comparable with published DABench results.
* ``official=False`` (training reward, synthesis filters) compares each sub-answer with
  :func:`match_answer` (relative tolerance, case-insensitive names, units, percentages), and a
  single-answer question also accepts a bare answer without the ``@name[...]`` wrapper.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from datamind_ext.rewards.match import match_answer
from datamind_ext.rewards.result import MatchResult
from datamind_ext.rewards.values import as_text

_SUB_RE = re.compile(r"@(\w+)\[(.*?)\]")
OFFICIAL_ABS_TOL = 1e-6


def parse_sub_answers(text: str) -> dict[str, str]:
    """``{name: value}`` of every ``@name[value]`` in the text; a repeated name keeps its last value."""
    return {name: value for name, value in _SUB_RE.findall(text)}


def gold_sub_answers(gold: object) -> dict[str, str]:
    """Gold sub-answers from a ``@name[value]`` string, a mapping, or DABench's ``common_answers`` pairs."""
    if isinstance(gold, Mapping):
        if "common_answers" in gold:
            return gold_sub_answers(gold["common_answers"])
        return {as_text(k): as_text(v) for k, v in gold.items()}
    if isinstance(gold, Sequence) and not isinstance(gold, (str, bytes)):
        return {as_text(pair[0]): as_text(pair[1]) for pair in gold if isinstance(pair, Sequence) and len(pair) == 2}
    return parse_sub_answers(as_text(gold))


def official_equal(pred: str | None, gold: str) -> bool:
    """The benchmark's equality: identical strings, or floats within 1e-6 (``float()``'s grammar)."""
    if pred == gold:
        return True
    try:
        return abs(float(pred) - float(gold)) < OFFICIAL_ABS_TOL  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return False


def match_dabench(pred: object, gold: object, *, official: bool, rel_tol: float = 0.03) -> MatchResult:
    """Every gold ``@name[value]`` sub-answer must be matched by the prediction's sub-answer of that name."""
    try:
        text = as_text(pred)
        golds = gold_sub_answers(gold)
        if not golds:
            return MatchResult(False, "gold_has_no_sub_answers")
        if official:
            preds = parse_sub_answers(text)
            wrong = [n for n, g in golds.items() if not official_equal(preds.get(n), g)]
        else:
            preds = {n.lower(): v for n, v in parse_sub_answers(text).items()}
            if not preds and len(golds) == 1:
                (only,) = golds.values()
                r = match_answer(text, only, rel_tol=rel_tol)
                return MatchResult(r.correct, f"dabench_bare:{r.reason}")
            wrong = [
                n
                for n, g in golds.items()
                if n.lower() not in preds or not match_answer(preds[n.lower()], g, rel_tol=rel_tol).correct
            ]
        if wrong:
            missing = [n for n in wrong if (n if official else n.lower()) not in preds]
            kind = "missing" if len(missing) == len(wrong) else "wrong"
            return MatchResult(False, f"dabench_{kind}:{','.join(wrong[:5])}({len(golds) - len(wrong)}/{len(golds)})")
        return MatchResult(True, f"dabench:{len(golds)}/{len(golds)}")
    except Exception as err:  # noqa: BLE001 - scoring must never raise
        return MatchResult(False, f"matcher_error:{type(err).__name__}")


def sub_answer_correctness(pred: object, gold: object, *, official: bool, rel_tol: float = 0.03) -> dict[str, bool]:
    """Per sub-answer correctness, for the benchmark's by-sub-question accuracies."""
    golds = gold_sub_answers(gold)
    text = as_text(pred)
    if official:
        preds = parse_sub_answers(text)
        return {n: official_equal(preds.get(n), g) for n, g in golds.items()}
    preds = {n.lower(): v for n, v in parse_sub_answers(text).items()}
    return {
        n: n.lower() in preds and match_answer(preds[n.lower()], g, rel_tol=rel_tol).correct for n, g in golds.items()
    }

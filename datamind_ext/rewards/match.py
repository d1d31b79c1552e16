"""Rule-based answer matching against a ground truth.

One entry point, :func:`match_answer`, decides by the gold answer's shape how to compare:
multiple choice, lists/sets/dicts (element-wise), booleans,
dates, numbers (relative tolerance; percent vs fraction; units, currency and thousands
separators ignored) and finally case- and whitespace-insensitive strings. It never raises:
any input yields a :class:`MatchResult` whose ``reason`` says why it matched or not, which the
reward logs so a wrong score can be traced to its rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from datamind_ext.rewards.result import MatchResult
from datamind_ext.rewards.values import (
    Number,
    as_text,
    clean,
    is_bool_word,
    numbers_in,
    parse_bool,
    parse_date,
    parse_literal,
    parse_number,
    split_items,
)

#: Lists longer than this are compared in order only (unordered matching is quadratic).
MAX_UNORDERED_ITEMS = 100
_PREFIX_RE = re.compile(
    r"^\s*(?:the\s+)?(?:final\s+)?(?:answer|result)\s*(?:is|:|=)\s*", re.IGNORECASE
)
_BOXED_RE = re.compile(r"\\boxed\{([^{}]*)\}")
_LETTER_RE = re.compile(
    r"^\s*(?:\(?(?:option|choice|answer)\s*[:]?\s*)?\(?([A-Za-z])\)?(?:[.):]|\s|$)", re.IGNORECASE
)


@dataclass(frozen=True)
class _Opts:
    rel_tol: float
    abs_tol: float
    ordered: bool


def match_answer(
    pred: object,
    gold: object,
    *,
    rel_tol: float = 0.03,
    abs_tol: float = 1e-9,
    ordered: bool = False,
    choices: Sequence[str] | None = None,
) -> MatchResult:
    """Compare a predicted answer with the gold answer by rules (no model involved).

    Args:
        pred: the model's answer text (the content of ``<answer>``); any object is accepted.
        gold: the ground truth: text, a number or a list/dict (DABench ``@name[value]`` answers are
            the ``dabench`` scorer's, :func:`~datamind_ext.rewards.dabench.match_dabench`).
        rel_tol: relative tolerance for numbers (the paper's 3 %); ``abs_tol`` covers gold 0.
        ordered: lists must match in order (default: as multisets).
        choices: option texts of a multiple-choice question, in letter order (A, B, ...);
            then letters and option texts are interchangeable.
    """
    try:
        opts = _Opts(float(rel_tol), float(abs_tol), bool(ordered))
        if not isinstance(gold, (str, bytes)) and isinstance(gold, (Mapping, Sequence, set, frozenset)):
            return _match_structured(_strip_prefix(as_text(pred)), gold, opts)
        p, g = _strip_prefix(as_text(pred)), as_text(gold).strip()
        if choices:
            return match_choice(p, g, list(choices))
        if not p.strip():
            return MatchResult(False, "empty_answer")
        if clean(p) == clean(g):
            return MatchResult(True, "exact")
        return _match_text(p, g, opts)
    except Exception as err:  # noqa: BLE001 - scoring must never raise
        return MatchResult(False, f"matcher_error:{type(err).__name__}")


def _strip_prefix(text: str) -> str:
    boxed = _BOXED_RE.findall(text)
    if boxed:
        text = boxed[-1]
    return _PREFIX_RE.sub("", text, count=1).strip()


def _match_text(p: str, g: str, opts: _Opts) -> MatchResult:
    lit = parse_literal(g)
    if lit is not None:
        return _match_structured(p, lit, opts)
    items = split_items(g)
    if items is not None and parse_number(g) is None:
        return _match_structured(p, items, opts)
    return _match_scalar(p, g, opts)


def _pred_items(p: str) -> object | None:
    lit = parse_literal(p)
    if lit is not None:
        return lit
    return split_items(p)


def _match_structured(p: str, gold: object, opts: _Opts) -> MatchResult:
    pred = _pred_items(p)
    if isinstance(gold, Mapping):
        pred_map = _as_mapping(pred)
        if pred_map is None:
            return MatchResult(False, "expected_dict")
        return _match_dicts(pred_map, gold, opts)
    gold_items = list(gold)  # type: ignore[call-overload]
    if pred is None:
        if len(gold_items) == 1:
            return _match_value(p, gold_items[0], opts)
        return MatchResult(False, "expected_list")
    if isinstance(pred, Mapping):
        pred = list(pred.values())
    pred_items = list(pred)  # type: ignore[call-overload]
    return _match_lists(pred_items, gold_items, opts, ordered=opts.ordered and not isinstance(gold, (set, frozenset)))


def _as_mapping(pred: object) -> Mapping | None:
    if isinstance(pred, Mapping):
        return pred
    if isinstance(pred, list) and pred and all(isinstance(i, str) for i in pred):
        out = {}
        for item in pred:
            parts = re.split(r"[:=]", item, maxsplit=1)
            if len(parts) != 2:
                return None
            out[parts[0]] = parts[1]
        return out
    return None


def _match_dicts(pred: Mapping, gold: Mapping, opts: _Opts) -> MatchResult:
    pk = {clean(as_text(k)): v for k, v in pred.items()}
    gk = {clean(as_text(k)): v for k, v in gold.items()}
    if set(pk) != set(gk):
        missing = sorted(set(gk) - set(pk))[:3]
        return MatchResult(False, f"dict_keys_differ:missing={missing}")
    for k, gv in gk.items():
        r = _match_value(pk[k], gv, opts)
        if not r.correct:
            return MatchResult(False, f"dict_value_differs:{k}:{r.reason}")
    return MatchResult(True, f"dict:{len(gk)}_keys")


def _match_lists(pred: list, gold: list, opts: _Opts, *, ordered: bool) -> MatchResult:
    if len(pred) != len(gold):
        return MatchResult(False, f"list_length:{len(pred)}!={len(gold)}")
    if ordered or len(gold) > MAX_UNORDERED_ITEMS:
        for i, (pv, gv) in enumerate(zip(pred, gold)):
            r = _match_value(pv, gv, opts)
            if not r.correct:
                return MatchResult(False, f"list_item_{i}:{r.reason}")
        return MatchResult(True, f"list_ordered:{len(gold)}")
    if sorted(clean(as_text(x)) for x in pred) == sorted(clean(as_text(x)) for x in gold):
        return MatchResult(True, f"list_unordered:{len(gold)}")  # fast path: same items as text
    ok = [[_match_value(pv, gv, opts).correct for pv in pred] for gv in gold]
    if _perfect_matching(ok):
        return MatchResult(True, f"list_unordered:{len(gold)}")
    return MatchResult(False, "list_items_differ")


def _perfect_matching(ok: list[list[bool]]) -> bool:
    """Whether every gold item can be paired with a distinct predicted item (Kuhn's algorithm)."""
    owner: dict[int, int] = {}

    def augment(g: int, seen: set[int]) -> bool:
        for p, good in enumerate(ok[g]):
            if good and p not in seen:
                seen.add(p)
                if p not in owner or augment(owner[p], seen):
                    owner[p] = g
                    return True
        return False

    return all(augment(g, set()) for g in range(len(ok)))


def _match_value(pred: object, gold: object, opts: _Opts) -> MatchResult:
    """Compare one element (of a list or dict): numbers directly, nested containers recursively."""
    if isinstance(gold, (Mapping, list, tuple, set, frozenset)):
        if isinstance(pred, Mapping):
            return _match_dicts(pred, gold, opts) if isinstance(gold, Mapping) else MatchResult(False, "type")
        if isinstance(pred, (list, tuple, set, frozenset)):
            if isinstance(gold, Mapping):
                return MatchResult(False, "expected_dict")
            return _match_lists(list(pred), list(gold), opts, ordered=opts.ordered)
        return _match_structured(as_text(pred), gold, opts)
    p, g = as_text(pred), as_text(gold)
    if isinstance(gold, bool):
        g = "true" if gold else "false"
    if isinstance(pred, bool):
        p = "true" if pred else "false"
    if clean(p) == clean(g):
        return MatchResult(True, "exact")
    return _match_scalar(p, g, opts)


def _close(a: float, b: float, opts: _Opts) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= max(opts.rel_tol * abs(b), opts.abs_tol)


def numbers_match(pred: Number, gold: Number, *, rel_tol: float = 0.03, abs_tol: float = 1e-9) -> bool:
    """Two numbers are equal within tolerance, reading either as a percentage if it has a % sign."""
    opts = _Opts(rel_tol, abs_tol, False)
    return any(_close(a, b, opts) for a in pred.candidates() for b in gold.candidates())


def _match_scalar(p: str, g: str, opts: _Opts) -> MatchResult:
    if is_bool_word(g):
        gb = parse_bool(g)
        pb = parse_bool(p)
        if pb is None:
            first = _FIRST_WORD_RE.split(p.strip(), maxsplit=1)[0]
            pb = parse_bool(first) if is_bool_word(first) else None
        if pb is None:
            return MatchResult(False, "expected_boolean")
        return MatchResult(pb == gb, "boolean" if pb == gb else "boolean_differs")
    gd = parse_date(g)
    if gd is not None:
        pd_ = parse_date(p)
        if pd_ is not None:
            return MatchResult(pd_ == gd, "date" if pd_ == gd else "date_differs")
    gn = parse_number(g)
    if gn is not None:
        pn = parse_number(p)
        if pn is not None:
            ok = numbers_match(pn, gn, rel_tol=opts.rel_tol, abs_tol=opts.abs_tol)
            return MatchResult(ok, "number" if ok else f"number_differs:{pn.value:g}!={gn.value:g}")
        found = numbers_in(p)
        distinct = {n.candidates() for n in found}
        if len(distinct) == 1:
            ok = numbers_match(found[0], gn, rel_tol=opts.rel_tol, abs_tol=opts.abs_tol)
            return MatchResult(ok, "number_in_text" if ok else f"number_differs:{found[0].value:g}!={gn.value:g}")
        if not found:
            return MatchResult(False, "expected_number")
        return MatchResult(False, f"ambiguous_numbers:{len(distinct)}")
    if _words(p) == _words(g):
        return MatchResult(True, "string")
    return MatchResult(False, "string_differs")


_WORD_RE = re.compile(r"\w+")
_FIRST_WORD_RE = re.compile(r"[\s,.;:!]+")


def _words(text: str) -> str:
    return " ".join(_WORD_RE.findall(clean(text)))


def choice_index(text: str, choices: Sequence[str]) -> int | None:
    """The option a text picks: a letter ("B", "(b)", "Option B.") or an option's text."""
    t = text.strip()
    by_text = {_words(c): i for i, c in enumerate(choices)}
    w = _words(t)
    if w in by_text:
        return by_text[w]
    m = _LETTER_RE.match(t)
    if m:
        i = ord(m.group(1).upper()) - ord("A")
        if 0 <= i < len(choices):
            rest = _words(t[m.end() :])
            if not rest or rest == _words(choices[i]):
                return i
    # "B) option text" or the option's text inside a sentence, when exactly one option is named.
    named = [i for i, c in enumerate(choices) if _words(c) and re.search(rf"\b{re.escape(_words(c))}\b", w)]
    return named[0] if len(named) == 1 else None


def match_choice(pred: object, gold: object, choices: Sequence[str]) -> MatchResult:
    """Multiple choice: the predicted option (letter or text) is the gold option (letter or text)."""
    try:
        opts = [as_text(c) for c in choices]
        gi = choice_index(as_text(gold), opts)
        if gi is None:
            return MatchResult(False, "gold_not_an_option")
        pi = choice_index(as_text(pred), opts)
        if pi is None:
            return MatchResult(False, "no_option_picked")
        return MatchResult(pi == gi, "choice" if pi == gi else f"choice_differs:{chr(65 + pi)}!={chr(65 + gi)}")
    except Exception as err:  # noqa: BLE001
        return MatchResult(False, f"matcher_error:{type(err).__name__}")

"""Property tests: no scorer raises on any input, results are well-typed, matching is reflexive."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datamind_ext.rewards import (
    RESULT_KEYS,
    compare_rows,
    match_answer,
    match_choice,
    match_dabench,
    score_format,
    score_sample,
)

TAGS = ["<think>", "</think>", "<code>", "</code>", "<interpreter>", "</interpreter>", "<answer>", "</answer>",
        "```python\n", "```", "@x[", "]", "%", "$", ",", "nan", "inf", "-", "e", "1", "0.5", "[", "{", "}", "\n"]
tagged = st.lists(st.one_of(st.sampled_from(TAGS), st.text(max_size=8)), max_size=30).map("".join)
anything = st.one_of(
    st.text(),
    tagged,
    st.binary().map(lambda b: b.decode("latin-1")),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers().map(str),
    st.recursive(st.one_of(st.integers(), st.floats(), st.text(max_size=5), st.booleans(), st.none()),
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                 max_leaves=10).map(repr),
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(anything, anything, st.floats(min_value=0, max_value=1), st.booleans())
def test_match_answer_never_raises(pred: str, gold: str, tol: float, ordered: bool) -> None:
    r = match_answer(pred, gold, rel_tol=tol, ordered=ordered)
    assert isinstance(r.correct, bool) and isinstance(r.reason, str) and r.reason


@SETTINGS
@given(anything)
def test_match_is_reflexive_on_nonempty(text: str) -> None:
    if text.strip() and not any(t in text for t in ("@", "nan")):
        r = match_answer(text, text)
        assert r.correct, r.reason


@SETTINGS
@given(anything, anything, st.lists(st.text(max_size=10), max_size=5))
def test_dabench_and_choice_never_raise(pred: str, gold: str, choices: list[str]) -> None:
    assert isinstance(match_dabench(pred, gold, official=True).correct, bool)
    assert isinstance(match_dabench(pred, gold, official=False).correct, bool)
    assert isinstance(match_choice(pred, gold, choices).correct, bool)


@SETTINGS
@given(anything, anything, st.sampled_from(["file_qa", "dabench", "bird", "mcq", "x"]),
       st.fixed_dictionaries({}, optional={"void": st.one_of(st.booleans(), st.floats(), st.text(max_size=3)),
                                           "rel_tol": st.one_of(st.floats(), st.text(max_size=3)),
                                           "choices": st.lists(st.text(max_size=5), max_size=3),
                                           "session_dir": st.text(max_size=10)}))
def test_score_sample_never_raises_and_keeps_keys(resp: str, gold: str, source: str, extra: dict) -> None:
    r = score_sample(source, resp, gold, extra)
    assert list(r.values) == list(RESULT_KEYS)
    assert all(isinstance(v, float) and not math.isnan(v) for v in r.values.values())
    assert isinstance(score_format(resp).ok, bool)


@SETTINGS
@given(st.lists(st.lists(st.one_of(st.text(max_size=4), st.floats(), st.integers(), st.none()), max_size=3),
                max_size=5))
def test_table_comparison_is_reflexive_and_total(rows: list[list]) -> None:
    r = compare_rows(rows, rows)
    assert isinstance(r.correct, bool)
    if rows and all(len(x) == len(rows[0]) for x in rows):
        assert r.correct, r.reason


def test_huge_and_binary_inputs() -> None:
    huge = "<answer>" + "9" * 2_000_000 + "</answer>"
    assert not score_sample("file_qa", huge, "1", {}).values["acc"]
    assert not match_answer("1" * 1_000_000, "1").correct
    nested = "<answer><answer><code>" * 10_000
    assert score_sample("file_qa", nested, "1", {}).values["format_ok"] == 0.0
    assert not match_answer("[" * 50_000, "[1]").correct
    assert isinstance(match_answer(b"\x00\xff\xfe", "x").correct, bool)
    assert match_answer(float("nan"), "nan").correct

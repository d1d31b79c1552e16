"""Rule-based answer matching: each rule the issue names, with near-miss negatives."""

from __future__ import annotations

import pytest

from datamind_ext.rewards import MatchResult, match_answer, match_choice

POSITIVE = [
    ("29.14", "29.14"),
    ("29.2", "29.14"),  # within 3 %
    ("45%", "0.45"),  # percent vs fraction
    ("0.45", "45%"),
    ("45", "45%"),
    ("$1,234.50", "1234.5"),  # currency + thousands separator
    ("1,234", "1234"),
    ("1.2345e3", "1234.5"),  # scientific notation
    ("1.2345 x 10^3", "1234.5"),
    ("\u22125", "-5"),  # unicode minus
    ("+5", "5"),
    ("12 kg", "12"),  # unit stripped
    ("€ 3.10", "3.1"),
    ("The mean is 29.14 °C.", "29.14"),  # one number in a sentence
    ("Yes", "True"),
    ("yes, it is", "yes"),
    ("FALSE", "no"),
    ("2020-01-05", "01/05/2020"),
    ("January 5, 2020", "2020-01-05"),
    ("  Hello   World. ", "hello world"),
    ("[3, 2, 1]", "[1, 2, 3]"),  # order-insensitive by default
    ("3, 2, 1", "1, 2, 3"),
    ("c; a; b", "a, b, c"),
    ('{"a": 1, "b": 2.0}', '{"b": 2, "a": 1}'),
    ("a: 1, b: 2", "{'a': 1, 'b': 2}"),
    ("[[1, 2], [3, 4]]", "[[3, 4], [1, 2]]"),
    ("nan", "nan"),
    ("The answer is 7", "7"),
    ("\\boxed{7}", "7"),
    ("The sensor_57 reading is 12", "12"),  # an identifier's digits are not a second number
]

NEGATIVE = [
    ("31", "29.14"),
    ("-5", "5"),  # sign matters
    ("0.45", "45"),  # a fraction is not the bare number
    ("Between 3 and 5", "4"),  # ambiguous numbers are not guessed
    ("no", "True"),
    ("normal", "not normal"),
    ("2020-01-06", "2020-01-05"),
    ("[1, 2]", "[1, 2, 3]"),
    ("[1, 1, 2]", "[1, 2, 2]"),  # multisets, not sets
    ('{"a": 1}', '{"a": 1, "b": 2}'),
    ('{"a": 1, "b": 3}', '{"a": 1, "b": 2}'),
    ("", "1"),
    ("inf", "1"),
    ("hello", "world"),
    ("Kcsv\nr2", "2"),  # a variable name's digit is not the answer (a tiny model's guess, once scored right)
    ("see table_5", "5"),
]


@pytest.mark.parametrize(("pred", "gold"), POSITIVE)
def test_match_positive(pred: str, gold: str) -> None:
    r = match_answer(pred, gold)
    assert r.correct, r.reason
    assert isinstance(r, MatchResult) and bool(r)


@pytest.mark.parametrize(("pred", "gold"), NEGATIVE)
def test_match_negative(pred: str, gold: str) -> None:
    r = match_answer(pred, gold)
    assert not r.correct and r.reason


def test_relative_tolerance_is_configurable() -> None:
    assert match_answer("104", "100").correct is False
    assert match_answer("104", "100", rel_tol=0.05).correct is True
    assert match_answer("100.5", "100", rel_tol=0.0).correct is False
    assert match_answer("0", "0", rel_tol=0.0).correct is True


def test_ordered_lists() -> None:
    assert match_answer("[3, 2, 1]", "[1, 2, 3]", ordered=True).correct is False
    assert match_answer("[1, 2, 3]", "[1, 2, 3.01]", ordered=True).correct is True


def test_gold_given_as_python_objects() -> None:
    assert match_answer("[2, 1]", [1, 2]).correct
    assert match_answer('{"x": "yes"}', {"x": True}).correct
    assert match_answer("42", 42).correct


def test_reason_names_the_rule() -> None:
    assert match_answer("45%", "0.45").reason == "number"
    assert match_answer("31", "29.14").reason.startswith("number_differs")
    assert match_answer("Yes", "True").reason == "boolean"


def test_multiple_choice_letters_and_texts() -> None:
    options = ["London", "Paris", "Rome"]
    assert match_choice("B", "Paris", options).correct
    assert match_choice("(b) Paris", "B", options).correct
    assert match_choice("Option C.", "Rome", options).correct
    assert match_choice("paris", "B", options).correct
    assert not match_choice("A", "B", options).correct
    assert not match_choice("The capital is London", "B", options).correct
    assert match_choice("Z", "B", options).reason == "no_option_picked"
    assert match_answer("B", "Paris", choices=options).correct

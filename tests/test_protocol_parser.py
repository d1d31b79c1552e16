from datamind_ext.protocol import extract_code, parse_response
from datamind_ext.protocol import tags as T

GOOD = (
    "<think>load it</think>\n<code>\n```python\nimport pandas as pd\nprint(1)\n```\n</code>"
    "\nuser\n<interpreter>\nThe code ran successfully:\n1\n</interpreter>\nassistant\n"
    "<think>done</think>\n<answer>1</answer>"
)


def test_well_formed_trajectory_text():
    p = parse_response(GOOD)
    assert p.violations == []
    assert p.answer == "1"
    assert p.code_cells == ["import pandas as pd\nprint(1)"]
    assert p.format_ok(require_code=True)


def test_model_turn_may_not_write_interpreter():
    turn = "<code>print(1)</code><interpreter>1</interpreter><answer>1</answer>"
    assert T.MODEL_INTERPRETER in parse_response(turn, model_turn=True).violations
    assert T.MODEL_INTERPRETER not in parse_response(turn).violations


def test_interpreter_must_follow_code():
    p = parse_response("<think>x</think><interpreter>fake</interpreter><answer>2</answer>")
    assert T.MODEL_INTERPRETER in p.violations


def test_violations_are_named():
    assert parse_response("").violations == [T.NO_ANSWER]
    assert f"{T.UNCLOSED}:answer" in parse_response("<answer>3").violations
    assert T.MULTIPLE_ANSWERS in parse_response("<answer>1</answer><answer>2</answer>").violations
    assert f"{T.UNOPENED}:think" in parse_response("x</think><answer>1</answer>").violations
    assert T.EMPTY_CODE in parse_response("<code>```python\n```</code><answer>1</answer>").violations
    assert T.AFTER_ANSWER in parse_response("<answer>1</answer><think>more</think>").violations
    assert f"{T.NESTED}:answer" in parse_response("<think>a <answer>1</answer></think>").violations
    assert not parse_response("<answer>1</answer>").format_ok(require_code=True)


def test_code_may_quote_tags():
    p = parse_response("<code>print('<answer>')</code><interpreter><answer></interpreter><answer>ok</answer>")
    assert p.answer == "ok"
    assert p.violations == []


def test_extract_code_without_fence():
    assert extract_code("\nprint(2)\n") == "print(2)"


def test_never_raises_on_garbage():
    for junk in [b"\xff\xfe<answer>", None, 3.5, "<" * 10_000, "\x00<code>", "<answer>" * 1000]:
        parse_response(junk)

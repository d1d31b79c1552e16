"""Rule filters and self-consistency: every drop has a named reason; the store survives torn writes."""

from __future__ import annotations

import json
from pathlib import Path

from datamind_ext.protocol import Message, Trajectory, observation_message
from datamind_ext.synthesis.filters import (
    answers_agree,
    filter_trajectories,
    language_problem,
    rule_problem,
)
from datamind_ext.synthesis.store import JsonlStore, StoredRecord, content_key


class _Rec(StoredRecord):
    v: int


def _traj(answer: str = "42", obs: str = "The code ran successfully:\n42", think: str = "I compute it.", tid: str = "t") -> Trajectory:
    return Trajectory(id=tid, task_id=tid, category="aggregation", ground_truth="42", messages=[
        Message(role="system", content="sys"), Message(role="user", content="What is it?"),
        Message(role="assistant", content=f"<think>{think}</think>\n<code>\n```python\nprint(42)\n```\n</code>"),
        observation_message(obs),
        Message(role="assistant", content=f"<think>Done.</think>\n<answer>{answer}</answer>"),
    ])


def test_rule_filters_name_their_reason() -> None:
    assert rule_problem(_traj()) is None
    assert rule_problem(_traj(answer="4" * 2000)) == "answer_too_long"
    assert rule_problem(_traj(obs="The code failed:\nNameError: x")) == "ends_in_error"
    assert rule_problem(_traj(obs="x" * 10 + "\n... [5000 characters cut] ...\n" + "y")) == "observation_blowup"
    assert rule_problem(_traj(think="这是一个很长的中文推理过程用来测试混合语言的过滤 and English words here too")) == "mixed_language"
    assert rule_problem(_traj(think="garbled \ufffd\ufffd text")) == "garbled_text"
    no_answer = _traj()
    no_answer.messages[-1] = Message(role="assistant", content="<think>forgot</think>")
    assert rule_problem(no_answer).startswith("format:")
    unclosed = _traj()
    unclosed.messages[2] = Message(role="assistant", content="<think>x\n<code>\n```python\nprint(1)\n```\n</code>")
    assert rule_problem(unclosed).startswith("format:")


def test_filter_report_counts_per_reason_and_category() -> None:
    res = filter_trajectories([_traj(tid="a"), _traj(answer="30", tid="b"), _traj(answer="9" * 2000, tid="c")], [])
    rep = res.report()
    assert rep["kept"] == 1 and rep["dropped_by_reason"] == {"answer_mismatch": 1, "answer_too_long": 1}
    assert rep["dropped_by_category"] == {"aggregation": {"answer_mismatch": 1, "answer_too_long": 1}}


def test_self_consistency_uses_the_rewards_matcher() -> None:
    assert answers_agree(["10.0", "10.2", "$10"])  # within 3 %, units ignored
    assert not answers_agree(["10", "11", "10"])
    assert not answers_agree(["North", None, "North"])
    assert answers_agree(["North", "north", " North "])
    assert language_problem("plain English with numbers 12.5") is None


def test_store_repairs_a_torn_last_line_and_never_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    with JsonlStore(path, _Rec) as s:
        assert s.append(_Rec(key="a", v=1)) and not s.append(_Rec(key="a", v=2))
        s.append(_Rec(key="b", v=2))
    with open(path, "a") as f:
        f.write('{"key": "c", "v"')  # a kill -9 in the middle of a write
    s2 = JsonlStore(path, _Rec)
    assert s2.keys == {"a", "b"}
    s2.append(_Rec(key="c", v=3))
    s2.close()
    lines = path.read_text().splitlines()
    assert [json.loads(x)["key"] for x in lines] == ["a", "b", "c"]
    assert content_key(1, {"b": 2, "a": 1}) == content_key(1, {"a": 1, "b": 2})

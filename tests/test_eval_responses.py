"""Reading responses files: only the prediction key of each format is ever read, never a field
that can hold the gold; records without a usable prediction are scored wrong with their reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from datamind_ext.cli.main import main
from datamind_ext.errors import UserError
from datamind_ext.evaluation.responses import read_responses

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eval"
TB_IDS = {"tb-num-1", "tb-fact-1", "tb-da-1", "tb-num-2"}


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_released_result_file_with_gold_in_answer_is_not_scored_from_it(tmp_path, capsys):
    """TableBench's released inference files carry the gold in ``answer`` and the model's output in
    ``prediction``: a model that answered nothing must score 0, not 100 %."""
    data = tmp_path / "tablebench"
    shutil.copytree(FIXTURES / "tablebench", data)
    gold = {json.loads(line)["id"]: json.loads(line)["answer"] for line in (data / "TableBench.jsonl").open()}
    rows = [
        {"id": "tb-num-1", "answer": gold["tb-num-1"], "prediction": None},
        {"id": "tb-fact-1", "answer": gold["tb-fact-1"]},  # prediction missing
        {"id": "tb-da-1", "answer": gold["tb-da-1"], "prediction": ["Final Answer: x"]},  # not a string
        {"id": "tb-num-2", "answer": gold["tb-num-2"], "prediction": "Final Answer: 999"},
    ]
    out = tmp_path / "out"
    argv = ["eval", "tablebench", "--data", str(data), "--responses", str(_write_jsonl(tmp_path / "r.jsonl", rows)),
            "--out", str(out), "--no-progress"]
    main(argv)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overall"]["paper"]["pass@1"] == 0.0
    assert summary["overall"]["official"]["mean_value"] == 0.0
    results = {json.loads(x)["item_id"]: json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()}
    assert results["tb-num-1"]["void_reason"] == "no prediction: field 'prediction' is null"
    assert results["tb-fact-1"]["void_reason"] == "no prediction: field 'prediction' is missing"
    assert results["tb-da-1"]["void_reason"] == "no prediction: field 'prediction' is a list, not a string"
    assert results["tb-num-1"]["scores"]["paper"]["correct"] is False
    assert results["tb-num-1"]["answer"] is None and results["tb-num-2"]["answer"] == "Final Answer: 999"


def test_each_format_reads_its_own_key(tmp_path):
    for key in ("text", "response", "pred", "prediction"):
        path = _write_jsonl(tmp_path / f"{key}.jsonl", [{"id": "tb-num-1", key: "35", "answer": "gold"}])
        (resp,) = read_responses(path, TB_IDS)
        assert resp.text == "35" and resp.void_reason is None
    path = _write_jsonl(tmp_path / "m.jsonl", [{"id": "tb-num-1", "answer": "35",
                                                 "messages": [{"role": "assistant", "content": "<answer>1</answer>"}]}])
    (resp,) = read_responses(path, TB_IDS)
    assert resp.trajectory and resp.text == ""


def test_explicit_field_and_ambiguous_records(tmp_path):
    path = _write_jsonl(tmp_path / "a.jsonl", [{"id": "tb-num-1", "response": "1", "prediction": "2"}])
    with pytest.raises(UserError, match="--field"):
        read_responses(path, TB_IDS)
    (resp,) = read_responses(path, TB_IDS, field="prediction")
    assert resp.text == "2"
    path = _write_jsonl(tmp_path / "b.jsonl", [{"id": "tb-num-1", "output": "7", "answer": "35"},
                                                {"id": "tb-num-2", "answer": "4"}])
    responses = read_responses(path, TB_IDS, field="output")
    assert responses[0].text == "7" and responses[1].void_reason == "no prediction: field 'output' is missing"
    with pytest.raises(UserError, match="no record has a prediction field"):
        read_responses(path, TB_IDS)  # only gold-holding fields: refuse rather than score 0 % silently


def test_bird_predict_dev_json_is_read_as_released(tmp_path):
    sep = "\t----- bird -----\t"
    path = tmp_path / "predict_dev.json"
    path.write_text(json.dumps({"0": f"SELECT COUNT(*) FROM customers{sep}shop", "2": None}))
    first, second = read_responses(path, {"0", "1", "2"})
    assert first.item_id == "0" and first.sql == "SELECT COUNT(*) FROM customers"
    assert second.sql is None and second.void_reason == "no prediction: field 'sql' is null"
    path.write_text(json.dumps({"0": ["SELECT 1"]}))
    with pytest.raises(UserError, match="predict_dev.json"):
        read_responses(path, {"0"})


def test_responses_to_dropped_questions_are_skipped_with_a_notice(tmp_path, capsys):
    data = tmp_path / "tablebench"
    shutil.copytree(FIXTURES / "tablebench", data)
    rows = [{"id": "tb-num-1", "prediction": "Final Answer: 35"}, {"id": "tb-vis-1", "prediction": "x"},
            {"id": "tb-da-2", "prediction": "Final Answer: 12"}]
    out = tmp_path / "out"
    assert main(["eval", "tablebench", "--data", str(data), "--responses",
                 str(_write_jsonl(tmp_path / "r.jsonl", rows)), "--out", str(out), "--no-progress"]) == 0
    assert "skipped 2 response(s) to dropped questions" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert any("2 response(s) to questions this benchmark drops skipped" in n for n in summary["notes"])
    assert summary["results"] == 1
    rows.append({"id": "nope", "prediction": "x"})
    assert main(["eval", "tablebench", "--data", str(data), "--responses",
                 str(_write_jsonl(tmp_path / "r2.jsonl", rows)), "--out", str(tmp_path / "o2")]) == 2

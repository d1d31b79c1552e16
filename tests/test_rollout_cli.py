"""``datamind-ext rollout``: replay validation of recorded trajectories (real interpreter) and the
model policy with the tiny model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from datamind_ext.cli.main import main
from datamind_ext.protocol import observation_message, observation_text

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples" / "files"


def _obs(output: str) -> dict[str, str]:
    text, _ = observation_text(SimpleNamespace(output=output, ok=True, error=None, timed_out=False))
    return observation_message(text).model_dump()


def _trajectory(tid: str, first_output: str) -> dict:
    turn1 = "<think>count</think><code>\n```python\nimport pandas as pd\ndf = pd.read_csv('retail_sales.csv')\nprint(len(df))\n```\n</code>"
    turn2 = "<code>\n```python\nprint(df.shape[1])\n```\n</code>"
    n_cols = len(pd.read_csv(SAMPLES / "retail_sales.csv").columns)
    return {"id": tid, "files": ["retail_sales.csv"], "messages": [
        {"role": "system", "content": "You analyse data."},
        {"role": "user", "content": "How many rows?"},
        {"role": "assistant", "content": turn1}, _obs(first_output),
        {"role": "assistant", "content": turn2}, _obs(f"{n_cols}\n"),
        {"role": "assistant", "content": "<answer>done</answer>"},
    ]}


def test_replay_reproduces_correct_and_flags_wrong(tmp_path, tiny_model_path, capsys):
    shutil.copy(SAMPLES / "retail_sales.csv", tmp_path / "retail_sales.csv")
    n = len(pd.read_csv(SAMPLES / "retail_sales.csv"))
    data = tmp_path / "trajs.jsonl"
    data.write_text(json.dumps(_trajectory("good", f"{n}\n")) + "\n" + json.dumps(_trajectory("bad", f"{n + 1}\n")) + "\n")
    out = tmp_path / "out.jsonl"
    rc = main(["rollout", "--policy", "replay", "--data", str(data), "--out", str(out),
               "--tokenizer", str(tiny_model_path), "--concurrency", "2"])
    assert rc == 1  # one trajectory's observations differ
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rows"] == 2 and summary["with_diffs"] == 1 and summary["void"] == 0 and summary["failed"] == 0
    good, bad = [json.loads(line) for line in out.read_text().splitlines()]
    assert good["id"] == "good" and good["observation_diffs"] == [] and good["answer"] == "done"
    assert bad["observation_diffs"] == [{"index": 0, "recorded": _obs(f"{n + 1}\n")["content"],
                                         "replayed": _obs(f"{n}\n")["content"]}]
    assert len(good["response_ids"]) == len(good["response_mask"]) > 0 and good["prompt_ids"]
    assert [t["kind"] for t in good["turn_metrics"]] == ["code", "code", "answer"]


def test_replay_of_correct_file_exits_zero(tmp_path):
    shutil.copy(SAMPLES / "retail_sales.csv", tmp_path / "retail_sales.csv")
    n = len(pd.read_csv(SAMPLES / "retail_sales.csv"))
    data = tmp_path / "t.jsonl"
    data.write_text(json.dumps(_trajectory("good", f"{n}\n")) + "\n")
    assert main(["rollout", "--policy", "replay", "--data", str(data)]) == 0
    rec = json.loads((tmp_path / "t.rollout.jsonl").read_text())
    assert rec["response_ids"] == [] and rec["observation_diffs"] == []  # no tokenizer: messages only


def test_model_policy_with_tiny_model(tmp_path, tiny_model_path, tiny_tokenizer):
    data = tmp_path / "tasks.jsonl"
    data.write_text("".join(json.dumps({"id": i, "messages": [{"role": "user", "content": f"question {i}"}]}) + "\n"
                            for i in range(3)))
    out = tmp_path / "o.jsonl"
    rc = main(["rollout", "--policy", "model", "--model", str(tiny_model_path), "--data", str(data), "--out", str(out),
               "--max-turns", "2", "--max-tokens-per-turn", "16"])
    assert rc == 0
    for rec in map(json.loads, out.read_text().splitlines()):
        assert len(rec["response_ids"]) == len(rec["response_mask"]) >= 1
        assert rec["metrics"]["turns"] >= 1 and rec["turn_metrics"][0]["gen_tokens"] <= 16
        assert rec["messages"][0]["role"] == "user"


def test_missing_data_file_is_one_line_error(tmp_path, capsys):
    assert main(["rollout", "--policy", "replay", "--data", str(tmp_path / "nope.jsonl")]) == 2
    assert "data file not found" in capsys.readouterr().err

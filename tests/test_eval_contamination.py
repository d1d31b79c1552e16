"""``datamind-ext eval contamination``: a benchmark table reused under another file name, with its
columns and rows reordered, is found; so is a copied question; unrelated tasks are not flagged."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd

from datamind_ext.cli.main import main

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eval"


def _synth_out(root: Path, tasks: list[tuple[str, str, Path]]) -> Path:
    rows = [{"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": q}],
             "data_source": "datamind_synth", "ability": "data", "reward_model": {"ground_truth": "1", "style": "rule"},
             "extra_info": {"task_id": tid, "files": [str(f)], "category": "stats", "difficulty_label": "easy"},
             "agent_name": "datamind_code_agent"} for tid, q, f in tasks]
    (root / "export" / "rl").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(root / "export" / "rl" / "train.parquet")
    return root


def test_shared_table_under_another_name_and_copied_question_are_listed(tmp_path, capsys):
    bench = tmp_path / "dabench"
    shutil.copytree(FIXTURES / "dabench", bench)
    with open(bench / "da-dev-tables" / "shop_sales.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    reordered = tmp_path / "sales_2023_export.csv"  # same table: columns reversed, rows reversed, "3.5" as "3.50"
    with open(reordered, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([h.upper() for h in reversed(header)])
        for r in reversed(rows):
            w.writerow([c + "0" if c == "3.5" else c for c in reversed(r)])
    other = tmp_path / "weather.csv"
    other.write_text("city,temp\nAvon,3\nBree,5\n")
    train = _synth_out(tmp_path / "synth", [
        ("t-table", "How many rows does the sales export have?", reordered),
        ("t-question", "What is the mean number of units sold per day in the table?", other),
        ("t-clean", "Which city is the warmest one in this weather file?", other),
    ])
    out = tmp_path / "out"
    assert main(["eval", "contamination", "--train", str(train), "--bench", "dabench", "--data", str(bench),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 shared table(s)" in printed and "sales_2023_export.csv" in printed and "shop_sales.csv" in printed
    report = json.loads((out / "contamination.json").read_text())
    assert [(t["train"].endswith("sales_2023_export.csv"), t["row_jaccard"]) for t in report["tables"]] == [(True, 1.0)]
    assert [(q["train"], q["bench"]) for q in report["questions"]] == [("t-question", "1")]


def test_contamination_user_errors_are_one_line(tmp_path, capsys):
    assert main(["eval", "contamination", "--bench", "dabench", "--data", str(tmp_path)]) == 2
    assert "needs --train SYNTH_OUT" in capsys.readouterr().err

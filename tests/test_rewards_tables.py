"""SQL result-table comparison: column-vector rule, tolerance, gold from a CSV or from gold SQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from datamind_ext.rewards import compare_rows, compare_tables, run_sql_rows


def _csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_row_order_and_extra_columns_ignored(tmp_path: Path) -> None:
    gold = _csv(tmp_path / "gold.csv", "name,total\na,1.5\nb,2\n")
    pred = _csv(tmp_path / "pred.csv", "id,who,sum\n7,b,2.004\n8,a,1.5\n")
    r = compare_tables(pred, gold)
    assert r.correct, r.reason


def test_tolerance_and_missing_column(tmp_path: Path) -> None:
    gold = _csv(tmp_path / "gold.csv", "name,total\na,1.5\nb,2\n")
    off = _csv(tmp_path / "off.csv", "name,total\na,1.5\nb,2.05\n")
    assert not compare_tables(off, gold).correct
    assert compare_tables(off, gold, abs_tol=0.1).correct
    only_names = _csv(tmp_path / "names.csv", "name\na\nb\n")
    assert compare_tables(only_names, gold).reason == "gold_column_1_unmatched"


def test_nulls_and_row_counts(tmp_path: Path) -> None:
    assert compare_rows([[None], ["x"]], [["x"], [""]]).correct  # NULL == empty cell
    assert not compare_rows([["x"]], [["x"], ["x"]]).correct
    assert compare_rows([], []).correct
    assert not compare_rows([["1"]], []).correct


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    gold = _csv(tmp_path / "gold.csv", "a\n1\n")
    assert compare_tables(tmp_path / "nope.csv", gold).reason == "result_file_missing"
    assert compare_tables(gold, tmp_path / "nope.csv").reason.startswith("gold_unreadable")


def test_gold_from_sql(tmp_path: Path) -> None:
    db = tmp_path / "shop.sqlite"
    con = sqlite3.connect(db)
    con.execute("create table sales(region text, amount real)")
    con.executemany("insert into sales values (?, ?)", [("n", 1.0), ("n", 2.0), ("s", 5.0)])
    con.commit()
    con.close()
    gold = run_sql_rows(db, "select region, sum(amount) from sales group by region")
    pred = _csv(tmp_path / "result.csv", "total,region\n5.0,s\n3.0,n\n")
    from datamind_ext.rewards import read_csv_rows

    assert compare_rows(read_csv_rows(pred), gold).correct
    try:
        run_sql_rows(db, "delete from sales")
    except sqlite3.OperationalError:
        pass  # read-only: the gold database cannot be modified
    assert len(run_sql_rows(db, "select * from sales")) == 3

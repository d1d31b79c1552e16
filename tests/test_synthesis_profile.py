"""Profile stage: every sample format, messy files, sampled reads of big files, failures with reasons."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from datamind_ext.synthesis.profile import (
    ProfileFailure,
    TableProfile,
    file_digest,
    find_data_files,
    profile_file,
    read_table,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples" / "files"


def _profiles(path: Path, **kw) -> list[TableProfile]:
    out = profile_file(path, **kw)
    assert all(isinstance(p, TableProfile) for p in out), out
    return out  # type: ignore[return-value]


def test_sample_folder_covers_every_format_and_reports_the_broken_file() -> None:
    results = [r for f in find_data_files(SAMPLES) for r in profile_file(f)]
    formats = {r.format for r in results if isinstance(r, TableProfile)}
    assert formats == {"csv", "tsv", "xlsx", "json", "jsonl", "parquet", "sqlite"}
    failures = [r for r in results if isinstance(r, ProfileFailure)]
    assert [Path(f.path).name for f in failures] == ["corrupt_export.xlsx"]
    assert "zip" in failures[0].reason.lower()
    # the whole data/ folder stays small
    total = sum(p.stat().st_size for p in (REPO / "data").rglob("*") if p.is_file())
    assert total < 2_000_000


def test_messy_files_encoding_delimiter_bad_lines_nested_json() -> None:
    (weather,) = _profiles(SAMPLES / "weather_stations.csv")
    assert weather.read == {"encoding": "cp1252", "sep": ";"}
    assert "München" in weather.columns[0].top_values
    (tickets,) = _profiles(SAMPLES / "support_tickets.csv")
    assert tickets.bad_lines_skipped == 2 and tickets.n_rows == 120  # quoted newlines are not rows
    (events,) = _profiles(SAMPLES / "web_events.jsonl")
    assert events.bad_lines_skipped == 1 and events.n_rows == 200
    (products,) = _profiles(SAMPLES / "products.json")
    assert "supplier.country" in [c.name for c in products.columns]
    rating = next(c for c in products.columns if c.name == "rating")
    assert rating.missing > 0 and rating.kind == "numeric"


def test_workbook_sheets_and_sqlite_keys() -> None:
    sheets = _profiles(SAMPLES / "school_grades.xlsx")
    assert [s.table for s in sheets] == ["students", "term1", "term2"]
    tables = {t.table: t for t in _profiles(SAMPLES / "library.sqlite")}
    assert set(tables) == {"authors", "books", "members", "loans"}
    assert tables["books"].primary_keys == ["book_id"]
    assert {"column": "author_id", "other_table": "authors", "other_column": "author_id"} in tables["books"].foreign_keys
    assert tables["loans"].n_rows == 300


def test_load_code_reads_what_the_profiler_read() -> None:
    for f in find_data_files(SAMPLES):
        for p in profile_file(f):
            if isinstance(p, TableProfile):
                df = read_table(p)
                assert list(map(str, df.columns)) == [c.name for c in p.columns], p.label
                assert len(df) == p.n_rows, p.label


def test_large_file_is_sampled_not_loaded(tmp_path: Path) -> None:
    n = 120_000
    big = tmp_path / "big.csv"
    pd.DataFrame({"a": range(n), "b": [i % 7 for i in range(n)]}).to_csv(big, index=False)
    (p,) = _profiles(big, max_rows=500)
    assert p.rows_sampled == 500 and p.n_rows == n
    arr = tmp_path / "big.json"
    arr.write_text(json.dumps([{"x": i, "y": str(i % 3)} for i in range(5000)]))
    (j,) = _profiles(arr, max_rows=100)
    assert j.rows_sampled == 100 and j.n_rows == 5000
    pq = tmp_path / "big.parquet"
    pd.DataFrame({"a": range(n)}).to_parquet(pq)
    (q,) = _profiles(pq, max_rows=100)
    assert q.rows_sampled == 100 and q.n_rows == n


def test_unreadable_and_unsupported_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 nope")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "array.json").write_text('{"not": "an array"}')
    results = {Path(p): profile_file(p) for p in [*find_data_files(tmp_path), tmp_path / "notes.txt"]}
    for path, res in results.items():
        assert len(res) == 1 and isinstance(res[0], ProfileFailure), path
        assert res[0].reason
    assert "unsupported" in results[tmp_path / "notes.txt"][0].reason


def test_a_workbook_saved_twice_keeps_its_table_keys(tmp_path: Path) -> None:
    """openpyxl writes the save time into the workbook: equal tables must still get equal keys (task seeds)."""
    df = pd.DataFrame({"region": ["north", "south"], "sales": [3.5, 4.0]})
    paths = [tmp_path / "a.xlsx", tmp_path / "b.xlsx", tmp_path / "c.xlsx"]
    for path, frame in zip(paths, [df, df, df.assign(sales=[3.5, 4.5])]):
        with pd.ExcelWriter(path) as xw:
            frame.to_excel(xw, sheet_name="s", index=False)
        time.sleep(1.1)  # the save time has a one-second resolution
    assert paths[0].read_bytes() != paths[1].read_bytes()  # the save times differ
    a, b, c = (file_digest(p) for p in paths)
    assert a == b and a != c
    keys = [[t.key for t in _profiles(p)] for p in paths]
    assert keys[0] == keys[1] and keys[0] != keys[2]

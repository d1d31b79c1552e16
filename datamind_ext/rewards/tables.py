"""Result-table comparison for SQL tasks (BIRD-style), the column-vector rule.

A predicted table matches the gold table when every gold column equals some predicted column
as a multiset of values (row order ignored, extra predicted columns allowed, column names
ignored), numbers equal within ``abs_tol`` and empty/NULL/NaN cells equal to each other. This
is the rule DataMind's SQL reward and BIRD evaluation use; it is written here on plain rows (the
stdlib ``csv`` and ``sqlite3`` modules) so a scorer worker needs no pandas import.
"""

from __future__ import annotations

import csv
import math
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from datamind_ext.rewards.match import MatchResult

#: Tables larger than this (rows) are not compared: a reward worker must stay bounded.
MAX_ROWS = 200_000
_NULLS = {"", "nan", "none", "null", "na", "<na>", "nat"}
csv.field_size_limit(10_000_000)


def _cell(v: object) -> tuple[int, float | str]:
    """A sortable, comparable cell: (0, NaN-marker) null, (1, float) number, (2, text) string."""
    if v is None:
        return (0, 0.0)
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if isinstance(v, bool):
        return (1, float(v))
    if isinstance(v, (int, float)):
        f = float(v)
        return (0, 0.0) if math.isnan(f) else (1, f)
    s = str(v).strip()
    if s.lower() in _NULLS:
        return (0, 0.0)
    try:
        f = float(s)
    except ValueError:
        return (2, s)
    return (0, 0.0) if math.isnan(f) else (1, f)


def _columns(rows: Sequence[Sequence[object]], width: int) -> list[list[tuple[int, float | str]]]:
    cols: list[list[tuple[int, float | str]]] = [[] for _ in range(width)]
    for row in rows:
        for j in range(width):
            cols[j].append(_cell(row[j] if j < len(row) else None))
    return [sorted(c, key=lambda x: (x[0], x[1]) if x[0] != 2 else (2, 0.0, x[1])) for c in cols]  # type: ignore[arg-type]


def _same_column(pred: list, gold: list, abs_tol: float) -> bool:
    if len(pred) != len(gold):
        return False
    for (pk, pv), (gk, gv) in zip(pred, gold):
        if pk != gk:
            return False
        if pk == 1:
            if math.isinf(gv) or math.isinf(pv):  # type: ignore[arg-type]
                if pv != gv:
                    return False
            elif abs(pv - gv) > abs_tol:  # type: ignore[operator]
                return False
        elif pk == 2 and pv != gv:
            return False
    return True


def compare_rows(
    pred_rows: Sequence[Sequence[object]], gold_rows: Sequence[Sequence[object]], *, abs_tol: float = 1e-2
) -> MatchResult:
    """Compare two tables given as rows (no header): every gold column must appear in the prediction."""
    try:
        gw = max((len(r) for r in gold_rows), default=0)
        pw = max((len(r) for r in pred_rows), default=0)
        if not gold_rows:
            return MatchResult(not pred_rows, "both_empty" if not pred_rows else "gold_empty_pred_not")
        if len(pred_rows) != len(gold_rows):
            return MatchResult(False, f"row_count:{len(pred_rows)}!={len(gold_rows)}")
        pcols, gcols = _columns(pred_rows, pw), _columns(gold_rows, gw)
        for j, g in enumerate(gcols):
            if not any(_same_column(p, g, abs_tol) for p in pcols):
                return MatchResult(False, f"gold_column_{j}_unmatched")
        return MatchResult(True, f"table:{gw}_gold_columns_matched")
    except Exception as err:  # noqa: BLE001 - scoring must never raise
        return MatchResult(False, f"table_error:{type(err).__name__}")


def read_csv_rows(path: str | Path, *, max_rows: int = MAX_ROWS) -> list[list[str]]:
    """The data rows of a CSV file (header dropped); raises ``OSError``/``ValueError`` on bad files."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        next(reader, None)
        rows: list[list[str]] = []
        for row in reader:
            rows.append(row)
            if len(rows) > max_rows:
                raise ValueError(f"more than {max_rows} rows")
    return rows


def compare_tables(pred_csv_path: str | Path, gold_csv_path: str | Path, *, abs_tol: float = 1e-2) -> MatchResult:
    """Compare a predicted result CSV with the gold CSV by the column-vector rule."""
    try:
        gold = read_csv_rows(gold_csv_path)
    except Exception as err:  # noqa: BLE001
        return MatchResult(False, f"gold_unreadable:{type(err).__name__}")
    return compare_result_file(pred_csv_path, gold, abs_tol=abs_tol)


def compare_result_file(pred_csv_path: str | Path, gold: Sequence[Sequence[object]], *,
                        abs_tol: float = 1e-2) -> MatchResult:
    """Compare a predicted result CSV with gold rows; a missing or unreadable file is a named failure."""
    try:
        pred = read_csv_rows(pred_csv_path)
    except FileNotFoundError:
        return MatchResult(False, "result_file_missing")
    except Exception as err:  # noqa: BLE001
        return MatchResult(False, f"result_unreadable:{type(err).__name__}")
    return compare_rows(pred, gold, abs_tol=abs_tol)


def run_sql_rows(db_path: str | Path, sql: str, *, timeout_s: float = 30.0, max_rows: int = MAX_ROWS) -> list[tuple]:
    """Rows of a read-only query on a sqlite file, aborted after ``timeout_s`` (used for gold SQL)."""
    uri = f"file:{Path(db_path).resolve()}?mode=ro"
    con = sqlite3.connect(uri, uri=True, timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    con.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        cur = con.execute(sql)
        rows = cur.fetchmany(max_rows + 1)
        if len(rows) > max_rows:
            raise ValueError(f"more than {max_rows} rows")
        return rows
    finally:
        con.close()

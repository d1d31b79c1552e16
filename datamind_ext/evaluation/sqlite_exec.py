"""Running a query on a BIRD sqlite database, read-only, with a real time limit.

Gold results are computed by executing the gold SQL (the benchmark ships no result tables),
and responses from other harnesses are usually SQL. The database is opened read-only through a
URI so no query can change it, and a progress handler aborts the query at the deadline: unlike
a thread or ``func_timeout`` wrapper (the reference harness), this really stops sqlite, and
no helper process is left behind.
"""

from __future__ import annotations

import csv
import sqlite3
import time
from pathlib import Path
from typing import Any

from datamind_ext.atomic_files import atomic_open


class SQLError(Exception):
    """The query failed or ran past its time limit; the message says which."""


class UndecodableText(SQLError):
    """A text value is not UTF-8 (sqlite3's default text handling, which BIRD's evaluation uses, fails)."""


def run_query(
    db_path: str | Path, sql: str, *, timeout_s: float, strict_text: bool = False
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(column names, rows) of ``sql`` on ``db_path``; raises :class:`SQLError`.

    ``strict_text``: decode text as sqlite3 does by default (invalid UTF-8 raises
    :class:`UndecodableText`) instead of replacing bad bytes.
    """
    deadline = time.monotonic() + timeout_s
    try:
        conn = sqlite3.connect(f"{Path(db_path).resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    except sqlite3.Error as err:
        raise SQLError(f"cannot open {db_path}: {err}") from None
    if not strict_text:
        conn.text_factory = lambda b: b.decode("utf-8", "replace")
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        cur = conn.execute(sql)
        rows = cur.fetchall()
        columns = [d[0] for d in (cur.description or [])]
    except sqlite3.OperationalError as err:
        if strict_text and "decode" in str(err).lower():
            raise UndecodableText(f"sqlite error: {err}") from None
        if time.monotonic() > deadline:
            raise SQLError(f"query ran past {timeout_s:g} s and was stopped") from None
        raise SQLError(f"sqlite error: {err}") from None
    except (sqlite3.Error, ValueError) as err:  # ValueError: e.g. several statements in one string
        raise SQLError(f"sqlite error: {err}") from None
    finally:
        conn.close()
    return columns, rows


def write_csv(path: Path, columns: list[str], rows: list[tuple[Any, ...]]) -> Path:
    """Write a result table as CSV (NULL as an empty cell), atomically."""
    with atomic_open(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
    return path

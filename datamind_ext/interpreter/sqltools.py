"""The recipe's SQL tools, offered to sessions opened over a sqlite file.

``get_db_info()`` describes the tables and ``execute_sql(sql, output_path="result.csv")`` runs
one read-only SELECT and writes its result as CSV inside the session's own directory (the
reference wrote every rollout's result to one shared folder, so rollouts overwrote each other).
The connection is read-only twice over: the file is opened ``mode=ro&immutable=1`` and an
authorizer denies every action but reading, so no statement text trick can write.
"""

from __future__ import annotations

import os
import re
import sqlite3
import urllib.parse
from typing import Any

_SQLITE_OK, _SQLITE_DENY = 0, 1
# sqlite3 authorizer action codes allowed: READ, SELECT, FUNCTION, RECURSIVE (WITH RECURSIVE).
_ALLOWED_ACTIONS = {20, 21, 31, 33}
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)


class SqlToolError(ValueError):
    """A query the SQL tools refuse (not a SELECT, several statements, output outside the directory)."""


def _authorizer(action: int, *_: Any) -> int:
    return _SQLITE_OK if action in _ALLOWED_ACTIONS else _SQLITE_DENY


class SqlTools:
    def __init__(self, db_path: str, workdir: str, *, max_rows: int, print_rows: int) -> None:
        self.db_path = db_path
        self.workdir = os.path.realpath(workdir)
        self.max_rows = max_rows
        self.print_rows = print_rows
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            uri = f"file:{urllib.parse.quote(os.path.realpath(self.db_path))}?mode=ro&immutable=1"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            conn.set_authorizer(_authorizer)
            # A Python callback every 50k VM steps lets the pool's interrupt (timeout) stop a long query.
            conn.set_progress_handler(lambda: 0, 50_000)
            self._conn = conn
        return self._conn

    def get_db_info(self) -> str:
        """Print and return every table's schema, row count and three sample rows."""
        import pandas as pd

        conn = self._connection()
        rows = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE type IN ('table','view') "
            "AND name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ).fetchall()
        parts = [f"Database {os.path.basename(self.db_path)}: {len(rows)} tables/views"]
        for kind, name, ddl in rows:
            quoted = '"' + name.replace('"', '""') + '"'
            count = conn.execute(f"SELECT COUNT(*) FROM {quoted}").fetchone()[0]
            sample = pd.read_sql_query(f"SELECT * FROM {quoted} LIMIT 3", conn)
            parts.append(f"\n{kind} {name} ({count} rows)\n{(ddl or '').strip()}\nsample rows:\n{sample.to_string(index=False)}")
        text = "\n".join(parts)
        print(text)
        return text

    def execute_sql(self, sql: str, output_path: str = "result.csv"):
        """Run one SELECT, write the result (at most ``max_rows`` rows) as CSV, print a preview."""
        import pandas as pd

        if not isinstance(sql, str):
            raise SqlToolError("sql must be a string")
        text = _COMMENT.sub(" ", sql).strip().rstrip(";").strip()
        if not re.match(r"(?is)^(select|with)\b", text):
            raise SqlToolError("only a single read-only SELECT (or WITH ... SELECT) statement is allowed")
        if ";" in re.sub(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"", "", text):
            raise SqlToolError("only one statement per execute_sql call is allowed")
        target = os.path.realpath(os.path.join(self.workdir, output_path))
        if not target.startswith(self.workdir + os.sep):
            raise SqlToolError(f"output_path must be inside the working directory: {output_path}")
        try:
            cur = self._connection().execute(text)
        except sqlite3.DatabaseError as err:
            if "not authorized" in str(err):
                raise SqlToolError(f"the query was refused (read-only SELECT only): {err}") from None
            raise
        columns = [d[0] for d in cur.description or []]
        rows = cur.fetchmany(self.max_rows + 1)
        capped = len(rows) > self.max_rows
        df = pd.DataFrame(rows[: self.max_rows], columns=columns)
        df.to_csv(target, index=False)
        name = os.path.relpath(target, self.workdir)
        if df.empty:
            print(f"The query returned no rows; an empty table with columns {columns} was saved to '{name}'.")
        else:
            note = f" (cut at {self.max_rows} rows)" if capped else ""
            print(f"The query returned {len(df)} rows x {len(columns)} columns{note}; saved to '{name}'.")
            if self.print_rows:
                print(df.head(self.print_rows).to_string(index=False))
                if len(df) > self.print_rows:
                    print(f"... {len(df) - self.print_rows} more rows in '{name}'")
        return df

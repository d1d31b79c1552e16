"""Tables made by combining tables of one file: sqlite joins along foreign keys, stacked sheets.

An analyst answers "average delay per airline name" by joining flights to airlines on the foreign
key, and compares continents kept in separate sheets by stacking the sheets. These profiles are
added by the profile stage (not by :func:`profile.profile_file`, which describes what is stored);
their ``read`` options carry the SQL or the sheet list, so ``load_code`` rebuilds the same table:
the join runs in the database (``pd.read_sql_query``), the sheets are concatenated with a
``sheet`` column.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd

from datamind_ext.synthesis.profile import TableProfile, _make, file_digest

#: joins per database (one per foreign key, in table order)
MAX_JOINS = 4


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def join_sql(child: TableProfile, fk: dict[str, str], parent: TableProfile) -> str:
    """Every child column plus the parent's non-key columns (prefixed by the parent's name when
    the child has a column of that name)."""
    names = {c.name for c in child.columns}
    cols = ["c.*"]
    for col in parent.columns:
        if col.name == fk["other_column"]:
            continue
        alias = col.name if col.name not in names else f"{parent.table}_{col.name}"
        names.add(alias)
        cols.append(f"p.{_q(col.name)} AS {_q(alias)}")
    return (f"SELECT {', '.join(cols)} FROM {_q(str(child.table))} AS c "
            f"JOIN {_q(str(parent.table))} AS p ON c.{_q(fk['column'])} = p.{_q(fk['other_column'])}")


def sqlite_joins(path: Path, profiles: list[TableProfile], max_rows: int) -> list[TableProfile]:
    by_table = {p.table: p for p in profiles}
    out: list[TableProfile] = []
    digest = file_digest(path)
    con = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    try:
        for child in profiles:
            for fk in child.foreign_keys:
                parent = by_table.get(fk["other_table"])
                if parent is None or len(out) >= MAX_JOINS or len(parent.columns) < 2:
                    continue
                sql = join_sql(child, fk, parent)
                df = pd.read_sql_query(f"{sql} LIMIT ?", con, params=(max_rows,))
                n = int(con.execute(f"SELECT COUNT(*) FROM ({sql})").fetchone()[0])
                if len(df) < 2:
                    continue
                title = f"{child.table} joined to {parent.table} on {fk['column']}"
                out.append(_make(path, child.path, "sqlite", digest, f"{child.table}+{parent.table}", df,
                                 {"sql": sql, "title": title}, n, True, 0,
                                 notes=[(f"join along the foreign key {child.table}.{fk['column']} → "
                                         f"{parent.table}.{fk['other_column']}")]))
    finally:
        con.close()
    return out


def stacked_sheets(path: Path, profiles: list[TableProfile], max_rows: int) -> list[TableProfile]:
    """One table of the sheets that share a layout (same column names, plain header), if ≥ 2."""
    groups: dict[tuple[str, ...], list[TableProfile]] = {}
    for p in profiles:
        if "skiprows" not in p.read and "numbers" not in p.read:
            groups.setdefault(tuple(c.name for c in p.columns), []).append(p)
    out = []
    for cols, sheets in groups.items():
        if len(sheets) < 2 or "sheet" in cols:
            continue
        names = [str(s.table) for s in sheets]
        df = pd.concat([pd.read_excel(path, sheet_name=s, nrows=max_rows).assign(sheet=s) for s in names],
                       ignore_index=True).head(max_rows)
        n = sum(s.n_rows for s in sheets)
        out.append(_make(path, sheets[0].path, "xlsx", file_digest(path), "+".join(names), df,
                         {"sheets": names, "title": f"sheets {', '.join(names)} stacked, sheet name in column 'sheet'"},
                         n, True, 0, notes=[f"{len(names)} sheets with the same columns stacked"]))
    return out


def combined_profiles(path: str | Path, profiles: list[TableProfile], max_rows: int = 5000) -> list[TableProfile]:
    """Joined and stacked tables of one file (empty for other formats or when nothing combines)."""
    p = Path(path)
    if not profiles:
        return []
    if profiles[0].format == "sqlite":
        return sqlite_joins(p, profiles, max_rows)
    if profiles[0].format == "xlsx":
        return stacked_sheets(p, profiles, max_rows)
    return []

"""Held-out data folders for a recipe's evaluation: fresh tables, familiar or unseen names.

Why: a checkpoint evaluated on the tasks it trained on measures memorisation. The quickstart
evaluates on tasks synthesized over *new tables* built from the sample files:

* ``fresh_tables``: every file keeps its name, format and read options (separator, encoding,
  sheet and table names), with new values (rows resampled with replacement, numeric columns
  jittered), so every answer differs from the training answers but the code that loads a file is
  the one training taught;
* ``unseen_names``: the same kind of new values and the same formats, with every file, sheet,
  table and column renamed to a word that never occurs in the training data (the tiny-model note
  shows this is where a few-minute SFT stops generalising; the recipe reports it as measured).

Tables are read the way synthesis reads them (its profiler and load code), so a file synthesis
cannot read is skipped here too.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from datamind_ext.synthesis.profile import TableProfile, find_data_files, profile_file, read_table

HeldoutKind = Literal["fresh_tables", "unseen_names"]

#: Invented names, none an English column name the samples use (checked in the tests).
UNSEEN_WORDS = (
    "zorbel", "quintex", "malvo", "drestin", "pylorn", "vexa", "tumbrel", "oskith", "graval", "fenwick_q",
    "lunder", "brisp", "coltran", "hasket", "jorvin", "keltis", "mordal", "nuvex", "plimsy", "rastok",
    "sevrin", "tolbek", "umbrin", "wexley", "yarrow_z", "zenthic", "ablix", "corvane", "dunmore_x", "eskel",
)


def _resample(df: pd.DataFrame, rng: random.Random) -> pd.DataFrame:
    """New rows drawn with replacement; numeric values jittered by up to ±20 % (integers stay integers)."""
    import numpy as np

    seed = rng.randrange(2**31)
    out = df.sample(n=len(df), replace=True, random_state=seed).reset_index(drop=True)
    gen = np.random.default_rng(seed)
    for col in out.columns:
        s = out[col]
        if s.dtype.kind == "f":
            out[col] = (s * gen.uniform(0.8, 1.2, len(s))).round(2)
        elif s.dtype.kind == "i":
            out[col] = (s * gen.uniform(0.8, 1.2, len(s))).round().astype(s.dtype)
    return out


class _Namer:
    """Names for files, sheets, tables and columns (unseen_names): the next word of a shuffled
    invented vocabulary, with a suffix (the column index, or t / f) so one table's names differ."""

    def __init__(self, rng: random.Random) -> None:
        self.words = list(UNSEEN_WORDS)
        rng.shuffle(self.words)
        self.i = 0

    def __call__(self, suffix: int | str) -> str:
        word = self.words[self.i % len(self.words)]
        self.i += 1
        return f"{word}_{suffix}"


def _write(path: Path, fmt: str, read: dict[str, Any], tables: dict[str | None, pd.DataFrame]) -> None:
    """Write ``tables`` in ``fmt`` with the source's read options (so the same load code reads them)."""
    if fmt in ("csv", "tsv"):
        (df,) = tables.values()
        df.to_csv(path, sep=read.get("sep", "\t" if fmt == "tsv" else ","), encoding=read.get("encoding", "utf-8"),
                  index=False)
    elif fmt == "xlsx":
        with pd.ExcelWriter(path) as xw:
            for sheet, df in tables.items():
                df.to_excel(xw, sheet_name=str(sheet), index=False)
    elif fmt == "parquet":
        (df,) = tables.values()
        df.to_parquet(path, index=False)
    elif fmt in ("json", "jsonl"):
        (df,) = tables.values()
        df.to_json(path, orient="records", lines=fmt == "jsonl", force_ascii=False)
    else:  # sqlite
        with sqlite3.connect(path) as con:
            for name, df in tables.items():
                df.to_sql(str(name), con, index=False)
        con.close()


#: One readable source file and its tables' profiles (what :func:`readable_sources` returns).
Source = tuple[Path, list[TableProfile]]


def readable_sources(src_dir: Path) -> list[Source]:
    """Every data file of ``src_dir`` synthesis can read, with its tables' profiles.

    Profiling is most of the cost of a held-out folder (xlsx above all), and the recipe writes 19
    training variants and 2 held-out sets from the same files: profiled once, not 21 times.
    """
    out: list[Source] = []
    for src in find_data_files(src_dir):
        profiles = [p for p in profile_file(src) if isinstance(p, TableProfile)]
        if profiles:
            out.append((src, profiles))
    return out


def make_heldout_folder(src_dir: Path, dst_dir: Path, kind: HeldoutKind, *, seed: int = 0,
                        sources: list[Source] | None = None) -> list[Path]:
    """Write the held-out files of ``kind`` for every readable data file in ``src_dir``.

    Returns the files written. Unreadable files (the samples include a deliberately corrupt one)
    are skipped, as synthesis skips them. ``sources``: :func:`readable_sources` of ``src_dir``,
    when the caller writes several folders from it.
    """
    rng = random.Random(f"{seed}:{kind}")
    name = _Namer(rng)
    dst_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for src, profiles in readable_sources(src_dir) if sources is None else sources:
        tables: dict[str | None, pd.DataFrame] = {}
        for prof in profiles:
            df = _resample(read_table(prof), rng)
            if df.empty:
                continue
            if kind == "unseen_names":
                df.columns = [name(i) for i in range(len(df.columns))]
            table = name("t") if kind == "unseen_names" and prof.table is not None else prof.table
            tables[table] = df
        if not tables:
            continue
        stem = f"table_{len(written)}_{name('f')}" if kind == "unseen_names" else src.stem
        dst = dst_dir / f"{stem}{src.suffix}"
        _write(dst, profiles[0].format, profiles[0].read, tables)
        written.append(dst)
    return written

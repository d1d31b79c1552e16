"""Held-out data folders for a recipe's evaluation: fresh tables, familiar or unseen names.

Why: a checkpoint evaluated on the tasks it trained on measures memorisation. The quickstart
evaluates on tasks synthesized over *new tables* built from the sample files:

* ``fresh_tables``: same file and column names as training, new values (rows resampled with
  replacement, numeric columns jittered), so every answer differs from the training answers;
* ``unseen_names``: the same kind of new values, with every file and column renamed to a word
  that never occurs in the training data (the tiny-model note shows this is where a
  few-minute SFT stops generalising; the recipe reports it as measured).

Only flat tables (csv, tsv, xlsx, json, jsonl, parquet) are used; databases are skipped.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

HeldoutKind = Literal["fresh_tables", "unseen_names"]

#: Invented names, none an English column name the samples use (checked in the tests).
UNSEEN_WORDS = (
    "zorbel", "quintex", "malvo", "drestin", "pylorn", "vexa", "tumbrel", "oskith", "graval", "fenwick_q",
    "lunder", "brisp", "coltran", "hasket", "jorvin", "keltis", "mordal", "nuvex", "plimsy", "rastok",
    "sevrin", "tolbek", "umbrin", "wexley", "yarrow_z", "zenthic", "ablix", "corvane", "dunmore_x", "eskel",
)
TABLE_SUFFIXES = (".csv", ".tsv", ".xlsx", ".json", ".jsonl", ".parquet")


def _read(path: Path):
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        sep = "\t" if suffix == ".tsv" else None  # None: sniffed (some samples use ';')
        try:
            return pd.read_csv(path, sep=sep, engine="python")
        except UnicodeDecodeError:  # the samples include a latin-1 file, as real exports do
            return pd.read_csv(path, sep=sep, engine="python", encoding="latin-1")
    if suffix == ".xlsx":
        return pd.read_excel(path)
    if suffix == ".json":
        return pd.read_json(path)
    if suffix == ".jsonl":
        return pd.read_json(path, lines=True)
    return pd.read_parquet(path)


def _resample(df, rng: random.Random):
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


def make_heldout_folder(src_dir: Path, dst_dir: Path, kind: HeldoutKind, *, seed: int = 0) -> list[Path]:
    """Write the held-out tables of ``kind`` for every readable flat table in ``src_dir``.

    Returns the files written. Unreadable files (the samples include a deliberately corrupt one)
    are skipped, as synthesis skips them.
    """
    rng = random.Random(f"{seed}:{kind}")
    words = list(UNSEEN_WORDS)
    rng.shuffle(words)
    dst_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for src in sorted(p for p in src_dir.iterdir() if p.suffix.lower() in TABLE_SUFFIXES):
        try:
            df = _read(src)
        except Exception:  # noqa: BLE001, S112 (a corrupt sample file is skipped, like synthesis does)
            continue
        if df.empty:
            continue
        df = _resample(df, rng)
        name = src.stem
        if kind == "unseen_names":
            start = len(written) * 7
            df.columns = [f"{words[(start + i) % len(words)]}_{i}" for i in range(len(df.columns))]
            name = f"table_{len(written)}_{words[len(written) % len(words)]}"
        dst = dst_dir / f"{name}.csv"
        df.to_csv(dst, index=False)
        written.append(dst)
    return written

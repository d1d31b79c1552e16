"""Overlap between a synthesized training set and a benchmark: shared tables and shared questions.

Synthesis draws on public data files, and benchmarks take their tables from the same public
sources, so a training set can contain a benchmark's table under another file name. Tables are
compared by fingerprint -- the normalised header (names lower-cased and stripped, as a set) and
the rows (cells normalised, each row as the sorted-by-column tuple, hashed) -- so column order,
row order and the file name do not matter; a table counts as shared when its headers match and
the Jaccard overlap of a min-hash sample of its rows reaches ``row_jaccard``. Questions are
compared by word n-grams (lower-cased alphanumeric words); a pair counts when it shares at least
one n-gram of ``ngram`` words (n-grams found in more than a fifth of the benchmark's questions,
the answer-format boilerplate its loader appends, are ignored).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datamind_ext.evaluation.items import EvalItem

#: Rows kept in a fingerprint: the smallest hashes (a min-hash sample, the same whatever the row order).
SAMPLE_ROWS = 256
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class TableFingerprint:
    """What identifies a table whatever its file name, column order and row order."""

    source: str  # file path (or "db.sqlite:table", "item-id:table.csv")
    header: frozenset[str]
    rows: frozenset[str]  # min-hash sample of row hashes
    n_rows: int


def _cell(value: Any) -> str:
    text = "" if value is None else str(value).strip().lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return text if math.isnan(number) else repr(number)  # "3", "3.0" and "3.00" alike; NaN as text


def fingerprint(source: str, header: list[Any], rows: list[list[Any]]) -> TableFingerprint:
    names = [str(h).strip().lower() for h in header]
    order = sorted(range(len(names)), key=lambda i: names[i])
    hashes = set()
    for row in rows:
        cells = [_cell(row[i]) if i < len(row) else "" for i in order]
        hashes.add(hashlib.sha1("\x1f".join(cells).encode()).hexdigest()[:16])
    return TableFingerprint(source, frozenset(names), frozenset(sorted(hashes)[:SAMPLE_ROWS]), len(rows))


def _csv_text_fingerprint(source: str, text: str) -> TableFingerprint | None:
    reader = list(csv.reader(io.StringIO(text)))
    if not reader:
        return None
    return fingerprint(source, reader[0], reader[1:])


def file_fingerprints(path: Path) -> list[TableFingerprint]:
    """Fingerprints of a data file: a CSV/TSV's one table, or each table of a sqlite database."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".sqlite", ".db", ".sqlite3"):
            out = []
            with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as con:
                tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
                for t in tables:
                    cur = con.execute(f'SELECT * FROM "{t}"')
                    out.append(fingerprint(f"{path}:{t}", [d[0] for d in cur.description], cur.fetchall()))
            return out
        if suffix in (".csv", ".tsv", ".txt"):
            text = path.read_text(encoding="utf-8", errors="replace")
            if suffix == ".tsv":
                text = text.replace("\t", ",")
            fp = _csv_text_fingerprint(str(path), text)
            return [fp] if fp else []
    except (OSError, sqlite3.Error, csv.Error):
        return []
    return []


def item_fingerprints(items: list[EvalItem]) -> list[TableFingerprint]:
    """Every table the items read: their files, inline tables and databases (each once)."""
    seen: set[str] = set()
    out: list[TableFingerprint] = []
    for it in items:
        for f in [*it.files, *([it.database] if it.database else [])]:
            if f not in seen:
                seen.add(f)
                out += file_fingerprints(Path(f))
        for name, text in it.inline_files.items():
            fp = _csv_text_fingerprint(f"{it.item_id}:{name}", text)
            if fp:
                out.append(fp)
    return out


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass
class Overlap:
    """Every shared table and question between a training set and a benchmark."""

    tables: list[dict[str, Any]] = field(default_factory=list)
    questions: list[dict[str, Any]] = field(default_factory=list)


def find_overlap(train: list[EvalItem], bench: list[EvalItem], *, ngram: int = 8,
                 row_jaccard: float = 0.5) -> Overlap:
    """Tables and questions of ``train`` that also occur in ``bench`` (see the module docstring)."""
    out = Overlap()
    bench_tables = item_fingerprints(bench)
    by_header: dict[frozenset[str], list[TableFingerprint]] = {}
    for fp in bench_tables:
        by_header.setdefault(fp.header, []).append(fp)
    for fp in item_fingerprints(train):
        for other in by_header.get(fp.header, []):
            union = fp.rows | other.rows
            jaccard = len(fp.rows & other.rows) / len(union) if union else 1.0
            if jaccard >= row_jaccard:
                out.tables.append({"train": fp.source, "bench": other.source, "row_jaccard": round(jaccard, 4),
                                   "columns": sorted(fp.header)})
    bench_grams = [(it.item_id, ngrams(it.question, ngram)) for it in bench]
    # Boilerplate the loaders add to every question ("Answer format: ...") is not contamination.
    df: dict[tuple[str, ...], int] = {}
    for _, grams in bench_grams:
        for g in grams:
            df[g] = df.get(g, 0) + 1
    common = {g for g, n in df.items() if n > max(2, len(bench) // 5)}
    for it in train:
        grams = ngrams(it.question, ngram) - common
        for bench_id, other in bench_grams:
            shared = grams & other
            if shared:
                out.questions.append({"train": it.item_id, "bench": bench_id, "shared_ngrams": len(shared),
                                      "example": " ".join(min(shared))})
    return out

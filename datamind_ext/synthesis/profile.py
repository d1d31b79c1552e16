"""Profile stage: a folder of data files → one :class:`TableProfile` per table.

A table is a csv/tsv file, one sheet of a workbook, a json/jsonl file, a parquet file or one
table of a sqlite database. Profiles carry what task generators and prompts need (columns, kinds,
missing values, ranges, top values, sample rows, keys) plus the read options and a
self-contained ``load_code`` snippet, so the code that task programs run reads the table the
same way the profiler did.

Files are never read whole when large: at most ``max_rows`` rows are parsed and the row count of
text formats is taken by streaming the bytes (exact unless fields hold quoted newlines). A file
that cannot be read yields a :class:`ProfileFailure` with its reason; the run goes on.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import sqlite3
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from datamind_ext.synthesis.roles import Role, infer_role

FileFormat = Literal["csv", "tsv", "xlsx", "json", "jsonl", "parquet", "sqlite"]
ColumnKind = Literal["integer", "numeric", "boolean", "datetime", "categorical", "text", "id"]

SUFFIX_FORMAT: dict[str, FileFormat] = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".xlsx": "xlsx", ".xlsm": "xlsx", ".json": "json",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet",
    ".sqlite": "sqlite", ".sqlite3": "sqlite", ".db": "sqlite",
}
#: bytes read to guess encoding and delimiter
SNIFF_BYTES = 64 * 1024
#: bytes at each end of a file that go into its content hash (files of any size hash fast)
HASH_EDGE_BYTES = 1 << 20


class ColumnProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")  # stored in stage files: unknown keys refused

    name: str
    kind: ColumnKind
    dtype: str
    missing: int = Field(description="missing values among the sampled rows")
    n_unique: int
    min: float | str | None = None
    max: float | str | None = None
    mean: float | None = None
    top_values: list[str] = Field(default_factory=list, description="most frequent values (categorical columns)")
    role: Role = Field("text", description="what the column means (see synthesis/roles.py)")
    role_reason: str = Field("", description="why that role was chosen (name, uniqueness, dtype, value set)")
    date_format: str | None = Field(None, description="strftime format of a text date column")
    parse_rate: float | None = Field(None, description="share of values that parse as dates (date columns)")


class TableProfile(BaseModel):
    """What is known about one table, and how to read it."""

    model_config = ConfigDict(extra="forbid")  # stored in stage files: unknown keys refused

    key: str = Field(description="content hash of the file + table name: stable across renames of the folder")
    path: str
    format: FileFormat
    table: str | None = Field(default=None, description="sheet or sqlite table name")
    read: dict[str, Any] = Field(default_factory=dict, description="read options (encoding, sep, ...)")
    n_rows: int
    n_rows_exact: bool = True
    rows_sampled: int
    n_cols: int
    columns: list[ColumnProfile]
    sample_rows: list[dict[str, Any]]
    bad_lines_skipped: int = 0
    primary_keys: list[str] = Field(default_factory=list)
    foreign_keys: list[dict[str, str]] = Field(default_factory=list)
    file_bytes: int
    notes: list[str] = Field(default_factory=list, description="what the reader did about messy content, each once")

    @property
    def file_name(self) -> str:
        return Path(self.path).name

    @property
    def label(self) -> str:
        if self.read.get("title"):
            return f"{self.file_name} ({self.read['title']})"
        return self._label()

    def _label(self) -> str:
        """Human name used in questions: file name, plus sheet/table when there is one, plus the
        row cap when tasks read only the first rows."""
        name = f"{self.file_name} ({self.table})" if self.table else self.file_name
        return f"{name} (first {self.read['nrows']} rows)" if self.read.get("nrows") else name

    def roles(self, *roles: str) -> list[ColumnProfile]:
        return [c for c in self.columns if c.role in roles]

    def column(self, name: str) -> ColumnProfile | None:
        return next((c for c in self.columns if c.name == name), None)

    def meta_text(self, max_cols: int = 40) -> str:
        """Meta information for prompts: columns, kinds, ranges, unique values, row count."""
        lines = [f"File: {self.label} — format {self.format}, {self.n_rows} rows, {self.n_cols} columns"]
        for c in self.columns[:max_cols]:
            extra = f", range {c.min}..{c.max}" if c.min is not None else ""
            if c.top_values:
                extra += f", values e.g. {', '.join(c.top_values[:5])}"
            lines.append(f"- {c.name} ({c.role}, {c.kind}, {c.missing} missing{extra})")
        if len(self.columns) > max_cols:
            lines.append(f"- … {len(self.columns) - max_cols} more columns")
        if self.foreign_keys:
            lines.append("Foreign keys: " + "; ".join(f"{f['column']} → {f['other_table']}.{f['other_column']}" for f in self.foreign_keys))
        return "\n".join(lines)


class NotATable(ValueError):
    """A file whose content is not a table (binary, prose, empty): reported as ``not a text table``."""


class ProfileFailure(BaseModel):
    """A file (or table) that could not be profiled, and why."""

    model_config = ConfigDict(extra="forbid")  # stored in stage files: unknown keys refused

    path: str
    table: str | None = None
    reason: str


def detect_format(path: Path) -> FileFormat | None:
    return SUFFIX_FORMAT.get(path.suffix.lower())


#: workbook members that hold only document metadata (openpyxl writes the save time into core.xml)
_XLSX_METADATA_MEMBERS = frozenset({"docProps/core.xml"})


def file_digest(path: Path) -> str:
    """Content hash from the size and both ends of the file: cheap for files of any size.

    A workbook is hashed by its members' CRCs and sizes without the document-metadata member,
    because every save rewrites the save time there: the same table saved twice must get the
    same key (task seeds derive from it), or two runs over equal data synthesize different tasks.
    """
    if SUFFIX_FORMAT.get(path.suffix.lower()) == "xlsx":
        try:
            return _workbook_digest(path)
        except zipfile.BadZipFile:
            pass  # not a readable workbook: hashed by its bytes, and the reader reports why it fails
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(HASH_EDGE_BYTES))
        if size > 2 * HASH_EDGE_BYTES:
            f.seek(size - HASH_EDGE_BYTES)
            h.update(f.read())
    return h.hexdigest()[:16]


def _workbook_digest(path: Path) -> str:
    h = hashlib.sha256(b"xlsx")
    with zipfile.ZipFile(path) as zf:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            if info.filename not in _XLSX_METADATA_MEMBERS:
                h.update(f"{info.filename}|{info.CRC}|{info.file_size}\n".encode())
    return h.hexdigest()[:16]


def detect_encoding(head: bytes) -> str:
    """utf-8 (or utf-16 with a BOM) when the head decodes as such, else cp1252, else latin-1.

    A fixed order rather than a statistical guess: exports from spreadsheets are overwhelmingly
    one of these, and a guess like "mac_latin2" on a short file mangles accented names.
    """
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    for enc in ("utf-8", "cp1252"):
        try:
            head.decode(enc)
            return enc
        except UnicodeDecodeError as err:
            if enc == "utf-8" and err.start >= len(head) - 3 and len(head) == SNIFF_BYTES:
                return enc  # a multi-byte character cut by the sniff window
    return "latin-1"


def detect_delimiter(text: str, fmt: FileFormat) -> str:
    if fmt == "tsv":
        return "\t"
    sample = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        counts = {d: sample.count(d) for d in ",;\t|"}
        return max(counts, key=counts.get) if any(counts.values()) else ","


def count_lines(path: Path) -> int:
    """Newlines in the file, streamed in 1 MiB chunks (never the whole file in memory)."""
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (0 if last == b"\n" else 1)


def _kind(s: pd.Series, name: str) -> ColumnKind:
    nonnull = s.dropna()
    if pd.api.types.is_bool_dtype(s):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "datetime"
    if pd.api.types.is_numeric_dtype(s):
        if len(nonnull) and nonnull.nunique() == len(nonnull) and (name.lower().endswith("id") or name.lower() == "index"):
            return "id"
        if pd.api.types.is_integer_dtype(s) or (len(nonnull) and (nonnull == nonnull.round()).all()):
            return "integer"
        return "numeric"
    text = nonnull.astype(str)
    if len(text) == 0:
        return "text"
    if text.str.match(r"^\d{4}-\d{2}-\d{2}").mean() > 0.9:
        parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
        if parsed.notna().mean() > 0.9:
            return "datetime"
    uniq = text.nunique()
    if uniq == len(text) and len(text) > 20:
        return "id"
    if uniq <= max(20, int(0.2 * len(text))) and text.str.len().mean() < 40:
        return "categorical"
    return "text"


def _scalar(v: Any) -> float | str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def profile_columns(df: pd.DataFrame) -> list[ColumnProfile]:
    out = []
    for name in df.columns:
        s = df[name]
        kind = _kind(s, str(name))
        info = infer_role(s, str(name))
        nonnull = s.dropna()
        col = ColumnProfile(name=str(name), kind=kind, dtype=str(s.dtype), missing=int(s.isna().sum()),
                            n_unique=int(nonnull.astype(str).nunique()), role=info.role, role_reason=info.reason,
                            date_format=info.date_format, parse_rate=info.parse_rate)
        if info.role == "date" and kind != "datetime":
            col.kind = "datetime"
        if kind in ("integer", "numeric") and len(nonnull):
            col.min, col.max = _scalar(nonnull.min()), _scalar(nonnull.max())
            col.mean = round(float(nonnull.mean()), 6)
        elif col.kind == "datetime" and len(nonnull):
            parsed = pd.to_datetime(nonnull, format=info.date_format, errors="coerce").dropna() \
                if info.date_format else pd.to_datetime(nonnull, errors="coerce").dropna()
            if len(parsed):
                col.min, col.max = parsed.min().isoformat(), parsed.max().isoformat()
        if kind in ("categorical", "boolean") or info.role in ("category", "binary", "ordinal"):
            col.top_values = [str(v) for v in nonnull.astype(str).value_counts().index[:8]]
        out.append(col)
    return out


# --- numbers written as text: decimal commas, thousands separators

_NUM_STYLES: dict[tuple[str, str | None], re.Pattern[str]] = {
    # (decimal, thousands): a value written that way (plain integers fit every style)
    (",", None): re.compile(r"^[-+]?\d+(,\d+)?$"),
    (",", "."): re.compile(r"^[-+]?\d{1,3}(\.\d{3})*(,\d+)?$|^[-+]?\d+(,\d+)?$"),
    (".", ","): re.compile(r"^[-+]?\d{1,3}(,\d{3})*(\.\d+)?$|^[-+]?\d+(\.\d+)?$"),
    (".", " "): re.compile(r"^[-+]?\d{1,3}( \d{3})*(\.\d+)?$"),
}


def number_style(values: pd.Series) -> tuple[str, str | None] | None:
    """How a text column writes its numbers — ``(decimal, thousands)`` — when every value is written
    one consistent, unambiguous way; None otherwise (e.g. ``"16,000"`` alone could be either)."""
    text = values.dropna().astype(str).str.strip()
    text = text[text != ""]
    if len(text) < 3 or not text.str.contains(r"[,. ]").any():
        return None
    fits = [st for st, rx in _NUM_STYLES.items() if text.str.match(rx).all()]
    if not fits:
        return None
    has_comma_dec = text.str.contains(r",\d{1,2}$|,\d{4,}$").any()  # a comma not followed by exactly 3 digits
    has_dot_groups = text.str.contains(r"\d\.\d{3}(?:,|$)").any()
    has_comma_groups = text.str.contains(r"\d,\d{3}(?:\.|,|$)").any()
    if (",", None) in fits and has_comma_dec:
        return (",", None)
    if (",", ".") in fits and has_dot_groups and (has_comma_dec or text.str.contains(r"\d\.\d{3}\.\d{3}").any()):
        return (",", ".")
    if (".", ",") in fits and has_comma_groups and not has_comma_dec and \
            (text.str.contains(r",\d{3},").any() or text.str.contains(r"\.\d+$").any()):
        return (".", ",")
    if (".", " ") in fits and text.str.contains(r"\d \d{3}").any():
        return (".", " ")
    return None


def to_number_code(col: str, style: tuple[str, str | None], var: str = "df") -> str:
    """One line of pandas that converts a text column written in ``style`` to numbers."""
    dec, thou = style
    expr = f"{var}[{col!r}].astype('string').str.strip()"
    if thou:
        expr += f".str.replace({thou!r}, '', regex=False)"
    if dec != ".":
        expr += f".str.replace({dec!r}, '.', regex=False)"
    return f"{var}[{col!r}] = pd.to_numeric({expr}, errors='coerce')"


def parse_text_numbers(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[str | None]], list[str]]:
    """Convert the text columns that consistently write numbers with decimal commas or thousands
    separators; return the frame, ``{column: [decimal, thousands]}`` and a note per column."""
    styles: dict[str, list[str | None]] = {}
    notes = []
    for name in df.columns:
        s = df[name]
        if s.dtype != object and not pd.api.types.is_string_dtype(s):
            continue
        style = number_style(s.head(2000))
        if style is None:
            continue
        styles[str(name)] = list(style)
        scope: dict[str, Any] = {"pd": pd, "df": df}
        exec(to_number_code(str(name), style), scope)  # noqa: S102 — our own generated line, as load_code runs it
        what = "decimal commas" if style[0] == "," else "decimal points"
        sep = {None: "", ".": ", '.' thousands", ",": ", ',' thousands", " ": ", space thousands"}[style[1]]
        notes.append(f"column {name!r}: numbers written with {what}{sep}, parsed as numbers")
    return df, styles, notes


def _sample_rows(df: pd.DataFrame, n: int = 3) -> list[dict[str, Any]]:
    rows = json.loads(df.head(n).to_json(orient="records", date_format="iso", default_handler=str))
    return [{k: (v[:80] if isinstance(v, str) else v) for k, v in r.items()} for r in rows]


# --- readers: each returns (dataframe of at most max_rows rows, read options, n_rows, exact, bad lines)


def read_delimited(path: Path, fmt: FileFormat, max_rows: int) -> tuple[pd.DataFrame, dict, int, bool, int]:
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    if not head.strip():
        raise NotATable("empty file")
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise NotATable(f"binary content (NUL bytes) in a {path.suffix} file")
    enc = detect_encoding(head)
    sep = detect_delimiter(head.decode(enc, errors="replace"), fmt)
    bad: list[list[str]] = []

    def skip(fields: list[str]) -> None:
        bad.append(fields)

    df = pd.read_csv(path, sep=sep, encoding=enc, engine="python", on_bad_lines=skip, nrows=max_rows)
    if df.shape[1] == 0:
        raise NotATable("no columns found")
    if df.shape[1] == 1 and len(str(df.columns[0]).split()) >= 5 and \
            df.iloc[:, 0].dropna().astype(str).str.split().str.len().mean() >= 5:
        raise NotATable("no delimiter found: one column of free text (prose, not a table)")
    lines = count_lines(path)
    n_rows = max(len(df), lines - 1 - len(bad))
    exact = len(df) < max_rows and n_rows == len(df)
    if len(df) < max_rows:
        n_rows = len(df)
        exact = True
    return df, {"encoding": enc, "sep": sep}, n_rows, exact, len(bad)


def _iter_json_array(path: Path, encoding: str = "utf-8") -> Iterator[Any]:
    """Stream the elements of a top-level JSON array without loading the file."""
    dec = json.JSONDecoder()
    buf, started = "", False
    with open(path, encoding=encoding) as f:
        while True:
            chunk = f.read(1 << 16)
            buf += chunk
            while True:
                buf = buf.lstrip()
                if not started:
                    if not buf:
                        break
                    if buf[0] != "[":
                        raise ValueError("json file is not an array of records")
                    buf, started = buf[1:], True
                    continue
                buf = buf.lstrip(", \n\r\t")
                if not buf or buf[0] == "]":
                    break
                try:
                    obj, end = dec.raw_decode(buf)
                except json.JSONDecodeError:
                    if not chunk:
                        raise
                    break  # need more text
                yield obj
                buf = buf[end:]
            if not chunk:
                return


def read_json(path: Path, max_rows: int) -> tuple[pd.DataFrame, dict, int, bool, int]:
    records, total = [], 0
    for obj in _iter_json_array(path):
        total += 1
        if len(records) < max_rows:
            records.append(obj)
    df = pd.json_normalize(records)
    if df.shape[1] == 0:
        raise ValueError("no records found")
    return df, {"encoding": "utf-8", "normalize": True}, total, True, 0


def read_jsonl(path: Path, max_rows: int) -> tuple[pd.DataFrame, dict, int, bool, int]:
    records, bad, total = [], 0, 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            if len(records) >= max_rows:
                total += 1
                continue
            try:
                records.append(json.loads(line))
                total += 1
            except ValueError:
                bad += 1
    df = pd.json_normalize(records)
    if df.shape[1] == 0:
        raise ValueError("no records found")
    return df, {"encoding": "utf-8"}, total, bad == 0 or len(records) < max_rows, bad


def read_parquet(path: Path, max_rows: int) -> tuple[pd.DataFrame, dict, int, bool, int]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    n_rows = pf.metadata.num_rows
    batch = next(pf.iter_batches(batch_size=max_rows), None)
    df = batch.to_pandas() if batch is not None else pf.schema_arrow.empty_table().to_pandas()
    return df, {}, n_rows, True, 0


#: rows scanned for the real header of a sheet (title rows, notes, merged group headers above it)
HEADER_SCAN_ROWS = 30


def _is_label(v: Any) -> bool:
    return isinstance(v, str) and bool(v.strip()) and not _looks_numeric(v)


def _looks_numeric(v: str) -> bool:
    try:
        float(v.replace(",", ""))
        return True
    except ValueError:
        return False


def find_header(raw: pd.DataFrame) -> tuple[int, int, list[str], list[str]]:
    """Where a sheet's header is: ``(first header row, header rows, column names, notes)``.

    The header is the first row that fills most of the table's width with labels; rows above it
    (titles, notes) are skipped. When the row below is also all labels and the header row has gaps
    (merged group cells read as one value then blanks), the two rows form one header: the group
    label is carried right and joined with the sub-label ("Sales Q1")."""
    width = int(raw.notna().sum(axis=1).max()) if len(raw) else 0
    notes: list[str] = []
    for r in range(min(len(raw), HEADER_SCAN_ROWS)):
        row = raw.iloc[r]
        filled = row.notna().sum()
        if filled < max(2, 0.6 * width) or sum(_is_label(v) for v in row if pd.notna(v)) < 0.8 * filled:
            continue
        names, n_hdr = [str(v).strip() if pd.notna(v) else "" for v in row], 1
        if r + 1 < len(raw):
            nxt = raw.iloc[r + 1]
            nxt_filled = nxt.notna().sum()
            after = raw.iloc[r + 2] if r + 2 < len(raw) else nxt
            data_after = any(pd.notna(v) and not _is_label(v) for v in after)
            if filled < width and nxt_filled >= 1 and data_after and all(_is_label(v) for v in nxt if pd.notna(v)):
                top = row.ffill()
                names = [" ".join(x for x in (str(t).strip() if pd.notna(t) else "", str(b).strip() if pd.notna(b) else "") if x)
                         for t, b in zip(top, nxt)]
                n_hdr = 2
                notes.append(f"two-row header (merged group cells) on rows {r + 1}-{r + 2}, joined into one name per column")
        if r:
            notes.append(f"header found on row {r + 1}: {r} title/note row(s) above it skipped")
        names = [n or f"column_{i + 1}" for i, n in enumerate(names)]
        seen: dict[str, int] = {}
        for i, n in enumerate(names):  # duplicate labels get a suffix, as pandas would
            if n in seen:
                seen[n] += 1
                names[i] = f"{n}.{seen[n]}"
            else:
                seen[n] = 0
        return r, n_hdr, names, notes
    return 0, 1, [], notes


def xlsx_sheets(path: Path, max_rows: int) -> Iterator[tuple[str, pd.DataFrame, int, dict, list[str]]]:
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True, data_only=True)
    try:
        names = list(wb.sheetnames)
        dims = {n: (wb[n].max_row or 1) for n in names}
    finally:
        wb.close()
    raws = pd.read_excel(path, sheet_name=names, header=None, nrows=HEADER_SCAN_ROWS, engine="openpyxl")
    for name in names:
        start, n_hdr, cols, notes = find_header(raws[name])
        read: dict[str, Any] = {"sheet_name": name}
        if start == 0 and n_hdr == 1:
            df = pd.read_excel(path, sheet_name=name, nrows=max_rows, engine="openpyxl")
        else:
            read |= {"skiprows": start + n_hdr, "names": cols}
            df = pd.read_excel(path, sheet_name=name, skiprows=start + n_hdr, header=None, names=cols,
                               nrows=max_rows, engine="openpyxl").dropna(how="all")
        yield name, df, max(dims[name] - start - n_hdr, 0), read, notes


def _ro_sqlite(path: Path):
    import sqlite_utils

    conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    return sqlite_utils.Database(conn)


def sqlite_tables(path: Path, max_rows: int) -> Iterator[tuple[str, pd.DataFrame, int, list[str], list[dict]]]:
    db = _ro_sqlite(path)
    try:
        for name in db.table_names():
            if name.startswith("sqlite_"):
                continue
            t = db[name]
            fks = [{"column": fk.column, "other_table": fk.other_table, "other_column": fk.other_column} for fk in t.foreign_keys]
            pks = [p for p in t.pks if p != "rowid"]
            df = pd.read_sql_query(f'SELECT * FROM "{name}" LIMIT ?', db.conn, params=(max_rows,))
            yield name, df, t.count, pks, fks
    finally:
        db.conn.close()


def _make(path: Path, shown: str, fmt: FileFormat, digest: str, table: str | None, df: pd.DataFrame,
          read: dict, n_rows: int, exact: bool, bad: int, pks: list[str] | None = None,
          fks: list[dict] | None = None, notes: list[str] | None = None) -> TableProfile:
    key = hashlib.sha256(f"{digest}|{table or ''}".encode()).hexdigest()[:16]
    notes = list(notes or [])
    if fmt != "sqlite" and fmt != "parquet":
        df, styles, num_notes = parse_text_numbers(df)
        if styles:
            read = {**read, "numbers": styles}
            notes += num_notes
    if bad:
        notes.append(f"{bad} malformed line(s) skipped")
    if len(df) < n_rows:
        notes.append(f"profiled the first {len(df)} of {n_rows} rows")
    return TableProfile(
        key=key, path=shown, format=fmt, table=table, read=read, n_rows=int(n_rows), n_rows_exact=exact,
        rows_sampled=len(df), n_cols=df.shape[1], columns=profile_columns(df), sample_rows=_sample_rows(df),
        bad_lines_skipped=bad, primary_keys=pks or [], foreign_keys=fks or [], file_bytes=path.stat().st_size,
        notes=list(dict.fromkeys(notes)),
    )


def profile_file(path: str | Path, max_rows: int = 5000, shown_path: str | None = None) -> list[TableProfile | ProfileFailure]:
    """Profile every table of one file; failures are returned, never raised."""
    p = Path(path)
    shown = shown_path or str(path)
    fmt = detect_format(p)
    if fmt is None:
        return [ProfileFailure(path=shown, reason=f"unsupported file type {p.suffix!r}")]
    try:
        digest = file_digest(p)
        if fmt in ("csv", "tsv"):
            df, read, n, exact, bad = read_delimited(p, fmt, max_rows)
            return [_make(p, shown, fmt, digest, None, df, read, n, exact, bad)]
        if fmt == "json":
            return [_make(p, shown, fmt, digest, None, *read_json(p, max_rows))]
        if fmt == "jsonl":
            return [_make(p, shown, fmt, digest, None, *read_jsonl(p, max_rows))]
        if fmt == "parquet":
            return [_make(p, shown, fmt, digest, None, *read_parquet(p, max_rows))]
        out: list[TableProfile | ProfileFailure] = []
        if fmt == "xlsx":
            for sheet, df, n, read, notes in xlsx_sheets(p, max_rows):
                if df.shape[1] == 0 or len(df) == 0:
                    out.append(ProfileFailure(path=shown, table=sheet, reason="empty sheet"))
                    continue
                out.append(_make(p, shown, fmt, digest, sheet, df, read, max(n, len(df)), n <= max_rows, 0, notes=notes))
            return out
        for table, df, n, pks, fks in sqlite_tables(p, max_rows):
            out.append(_make(p, shown, fmt, digest, table, df, {"table": table}, n, True, 0, pks, fks))
        if not out:
            out.append(ProfileFailure(path=shown, reason="database has no tables"))
        return out
    except NotATable as err:
        return [ProfileFailure(path=shown, reason=f"not a text table: {err}")]
    except UnicodeDecodeError:
        return [ProfileFailure(path=shown, reason="not a text table: undecodable bytes")]
    except Exception as err:  # noqa: BLE001 — any unreadable file is reported and skipped
        msg = str(err).splitlines()[0] if str(err) else ""
        return [ProfileFailure(path=shown, reason=f"{type(err).__name__}: {msg}"[:300])]


def find_data_files(folder: str | Path) -> list[Path]:
    """Supported files under ``folder``, sorted (deterministic order)."""
    root = Path(folder)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and detect_format(p) is not None)


def load_code(profile: TableProfile, file_ref: str | None = None) -> str:
    """Self-contained pandas code that reads the table into ``df`` as the profiler did (numbers
    written as text converted, the row cap applied)."""
    code = _read_code(profile, file_ref)
    for col, style in profile.read.get("numbers", {}).items():
        code += "\n" + to_number_code(col, (style[0], style[1]))
    if profile.read.get("nrows"):
        code += f"\ndf = df.head({int(profile.read['nrows'])})"
    return code


def _read_code(profile: TableProfile, file_ref: str | None = None) -> str:
    ref = file_ref or profile.path
    r = profile.read
    if profile.format in ("csv", "tsv"):
        args = [repr(ref)]
        if r.get("sep", ",") != ",":
            args.append(f"sep={r['sep']!r}")
        if r.get("encoding", "utf-8") != "utf-8":
            args.append(f"encoding={r['encoding']!r}")
        if profile.bad_lines_skipped:
            args.append("on_bad_lines='skip'")
        return f"df = pd.read_csv({', '.join(args)})"
    if profile.format == "xlsx":
        if "sheets" in r:  # several sheets of one layout, stacked, with the sheet name as a column
            return (f"df = pd.concat([pd.read_excel({ref!r}, sheet_name=s).assign(sheet=s) for s in {r['sheets']!r}],\n"
                    "               ignore_index=True)")
        if "skiprows" in r:
            return (f"df = pd.read_excel({ref!r}, sheet_name={profile.table!r}, skiprows={r['skiprows']}, header=None,\n"
                    f"                   names={r['names']!r})\ndf = df.dropna(how='all')")
        return f"df = pd.read_excel({ref!r}, sheet_name={profile.table!r})"
    if profile.format == "parquet":
        return f"df = pd.read_parquet({ref!r})"
    if profile.format == "json":
        return f"import json\nwith open({ref!r}, encoding='utf-8') as f:\n    df = pd.json_normalize(json.load(f))"
    if profile.format == "jsonl":
        return (
            "import json\nrecords = []\n"
            f"with open({ref!r}, encoding='utf-8') as f:\n"
            "    for line in f:\n"
            "        try:\n            records.append(json.loads(line))\n"
            "        except ValueError:\n            pass  # skip a corrupt line\n"
            "df = pd.json_normalize(records)"
        )
    if "sql" in r:  # a join along foreign keys, done by the database
        return f"import sqlite3\ncon = sqlite3.connect({ref!r})\ndf = pd.read_sql_query({r['sql']!r}, con)"
    return f"import sqlite3\ncon = sqlite3.connect({ref!r})\ndf = pd.read_sql_query('SELECT * FROM \"{profile.table}\"', con)"


def read_table(profile: TableProfile, path: str | Path | None = None) -> pd.DataFrame:
    """Run :func:`load_code` in-process (used by tests to check code and profile agree)."""
    scope: dict[str, Any] = {"pd": pd}
    exec(load_code(profile, str(path or profile.path)), scope)  # noqa: S102 — our own generated code
    return scope["df"]


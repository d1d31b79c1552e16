"""Column roles: what a column *means*, inferred from its name, dtype, uniqueness and value set.

Task generators must not average a row index, sum a year or correlate two 0/1 dummies; the
dtype alone cannot tell them apart from measures. Every column gets one role and the reason it
was chosen (stored in the profile, so a reviewer can see why), and every operation of the
generator declares which roles it accepts.

Roles:
  identifier  row index, key or unique label — never aggregated
  measure     continuous quantity — any statistic
  count       non-negative whole numbers of things — any statistic
  binary      two values; a numeric 0/1 or boolean flag may be averaged as a share
  category    nominal label — group-bys, filters, distinct counts
  ordinal     small set of ordered integer codes (levels, ratings) — group-bys, not means
  date        date/time (any common format; parsed with pandas, parse rate recorded)
  year        a calendar year stored as a number — grouping/filtering, not a measure
  text        free text — not used by programmatic tasks
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Literal

import pandas as pd

Role = Literal["identifier", "measure", "count", "binary", "category", "ordinal", "date", "year", "text"]

#: roles that statistics (mean, sum, correlation, ratios, thresholds) may take
MEASURE_ROLES: frozenset[str] = frozenset({"measure", "count"})
#: roles a group-by may take
GROUP_ROLES: frozenset[str] = frozenset({"category", "binary", "ordinal", "year"})

_INDEX_NAMES = re.compile(r"^(unnamed: ?\d+|index|idx|rownames|row ?(no|num|number)?|x|#|no\.?|obs)$", re.IGNORECASE)
_ID_NAME = re.compile(r"(^id$|[ _.\-]id$|[a-z]Id$|ID$|^id[ _.\-]|_key$|^key$|^uuid|^code$|_code$|\bcode$|zip|fips|isbn|phone"
                      r"|(?i:^seqn?$|_seq$|^(subject|patient|person|participant|respondent)s?$))")
_YEAR_NAME = re.compile(r"(year|yr\b|^yr|season|cohort|vintage)", re.IGNORECASE)
_COUNT_NAME = re.compile(r"(^n_|^num|count|number|total|^n$|freq|deaths|cases|births|visits|children|kids|pop)", re.IGNORECASE)
_ORDINAL_NAME = re.compile(r"(rank|level|grade|rating|stage|class|educ|scale|likert|tier|quality|satisf)", re.IGNORECASE)
#: names under which small integer sets are class labels (ML exports write classes as 0, 1, 2, ...)
_LABEL_NAME = re.compile(r"(^(target|label|labels|y|class|cluster|outcome|diagnosis)$|_(label|class|cluster)$"
                         r"|^(label|class|cluster)_)", re.IGNORECASE)
_CALENDAR_NAME = re.compile(r"^(month|mon|day|dow|weekday|hour|quarter|qtr|week|wk)$", re.IGNORECASE)
_TRUE_FALSE = {"0", "1", "true", "false", "yes", "no", "y", "n", "t", "f"}
#: share of sampled text values that must parse as dates for a column to be a date
DATE_PARSE_RATE = 0.9


@dataclass
class RoleInfo:
    role: Role
    reason: str
    date_format: str | None = None
    parse_rate: float | None = None


def guess_date_format(values: pd.Series) -> tuple[str | None, float]:
    """The strftime format pandas guesses for the first values, and the share of ``values`` it
    parses (tries month-first, then day-first). ``(None, 0)`` when no format has a year and
    another field: a bare year or a month name alone is not a date."""
    from pandas.tseries.api import guess_datetime_format

    text = values.astype(str).str.strip()
    text = text[text != ""]
    if text.empty or not text.str.contains(r"\d").mean() > 0.9:
        return None, 0.0
    best: tuple[str | None, float] = (None, 0.0)
    for dayfirst in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fmts = {guess_datetime_format(v, dayfirst=dayfirst) for v in text.head(5)}
        fmts.discard(None)
        for fmt in sorted(fmts):
            if not ("%Y" in fmt or "%y" in fmt) or fmt.count("%") < 2:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rate = float(pd.to_datetime(text, format=fmt, errors="coerce").notna().mean())
            if rate > best[1]:
                best = (fmt, rate)
    return best


def _is_consecutive_index(nonnull: pd.Series) -> bool:
    if not pd.api.types.is_integer_dtype(nonnull) and not (nonnull == nonnull.round()).all():
        return False
    v = nonnull.astype("int64")
    return len(v) > 2 and v.is_unique and v.is_monotonic_increasing and int(v.iloc[0]) in (0, 1) and \
        int(v.iloc[-1]) - int(v.iloc[0]) == len(v) - 1


def infer_role(s: pd.Series, name: str) -> RoleInfo:
    """The role of one column (of the sampled rows), with the reason it was chosen."""
    nonnull = s.dropna()
    n, uniq = len(nonnull), int(nonnull.astype(str).nunique()) if len(nonnull) else 0
    if n == 0:
        return RoleInfo("text", "no values")
    if pd.api.types.is_bool_dtype(s):
        return RoleInfo("binary", "boolean dtype")
    if pd.api.types.is_datetime64_any_dtype(s):
        return RoleInfo("date", "datetime dtype", parse_rate=1.0)
    if _INDEX_NAMES.match(name.strip()) and (uniq == n or _is_consecutive_index(nonnull)):
        return RoleInfo("identifier", f"name {name!r} with unique values: a row index")
    if pd.api.types.is_numeric_dtype(s):
        return _numeric_role(nonnull, name, n, uniq)
    return _text_role(nonnull, name, n, uniq)


def _numeric_role(nonnull: pd.Series, name: str, n: int, uniq: int) -> RoleInfo:
    integral = pd.api.types.is_integer_dtype(nonnull) or bool((nonnull == nonnull.round()).all())
    values = set(nonnull.unique().tolist()) if uniq <= 2 else set()
    if uniq <= 2 and values <= {0, 1}:
        return RoleInfo("binary", f"only the values {sorted(values)}: a 0/1 flag")
    if _ID_NAME.search(name) and integral:
        return RoleInfo("identifier", f"name {name!r} reads as a key or code")
    if integral and _is_consecutive_index(nonnull) and n > 20:
        return RoleInfo("identifier", "unique consecutive integers in row order: a row index")
    if integral and re.match(r"^(year|yr)$", name.strip(), re.IGNORECASE):
        return RoleInfo("year", f"name {name!r}: calendar years (possibly written with two digits)")
    if integral and nonnull.between(1700, 2100).all():
        if _YEAR_NAME.search(name):
            return RoleInfo("year", f"name {name!r} and whole numbers within 1700..2100")
        if nonnull.between(1900, 2100).all() and uniq <= 150 and not _COUNT_NAME.search(name):
            return RoleInfo("year", "whole numbers all within 1900..2100: calendar years")
    if uniq == 2:
        return RoleInfo("binary", f"two values {sorted(map(str, nonnull.unique()))}: a two-level code")
    if integral and _CALENDAR_NAME.match(name.strip()) and nonnull.between(0, 53).all():
        return RoleInfo("ordinal", f"name {name!r}: a calendar field (an ordered code, not a quantity)")
    if integral and uniq <= 10 and n >= 3 * uniq and _LABEL_NAME.search(name.strip()):
        return RoleInfo("category", f"name {name!r} with {uniq} integer values: class labels, not a quantity")
    if integral and uniq <= 10 and n >= 3 * uniq and not _COUNT_NAME.search(name):
        lo, hi = int(nonnull.min()), int(nonnull.max())
        # codes usually start at 1 (1..5 ratings); counts include 0 (0..6 absences)
        if hi - lo + 1 <= 12 and lo >= 0 and (_ORDINAL_NAME.search(name) or (lo >= 1 and hi - lo + 1 == uniq)):
            return RoleInfo("ordinal", f"{uniq} integer codes {lo}..{hi}: an ordered scale, not a quantity")
    if integral and uniq == n and n > 20 and not _COUNT_NAME.search(name) and float(nonnull.min()) >= 0 \
            and (nonnull.max() - nonnull.min()) < 3 * n:
        return RoleInfo("identifier", "unique whole numbers spread like row numbers")
    if integral and float(nonnull.min()) >= 0:
        return RoleInfo("count", "non-negative whole numbers")
    return RoleInfo("measure", f"numeric ({nonnull.dtype}) with {uniq} distinct values")


def _text_role(nonnull: pd.Series, name: str, n: int, uniq: int) -> RoleInfo:
    text = nonnull.astype(str)
    fmt, rate = guess_date_format(text.head(500))
    if fmt and rate >= DATE_PARSE_RATE:
        return RoleInfo("date", f"text parsed as dates with format {fmt!r} ({rate:.0%} of values)", fmt, round(rate, 4))
    if uniq == 2:
        vals = sorted(text.str.lower().unique())
        why = "a yes/no flag" if set(vals) <= _TRUE_FALSE else "a two-level label"
        return RoleInfo("binary", f"two values {vals}: {why}")
    avg_len = float(text.str.len().mean())
    if _ID_NAME.search(name) and avg_len < 20 and uniq > 2:
        return RoleInfo("identifier", f"name {name!r} reads as a key or code")
    if uniq == n and n > 20:
        if avg_len > 40 or text.str.contains(" ").mean() > 0.8 and avg_len > 25:
            return RoleInfo("text", f"unique strings, {avg_len:.0f} characters on average: free text")
        return RoleInfo("identifier", "every value unique: a key or label per row")
    if uniq <= max(20, int(0.5 * n)) and avg_len < 40 and n >= 10:
        return RoleInfo("category", f"{uniq} distinct labels among {n} values")
    return RoleInfo("text", f"{uniq} distinct strings among {n}, {avg_len:.0f} characters on average")

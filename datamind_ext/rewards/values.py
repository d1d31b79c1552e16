"""Reading answer text as typed values: numbers, booleans, dates, lists, dicts, strings.

Answers come from a model, so every reader here is total: it returns ``None`` when the text is
not of its kind and never raises. The readers are shared by the answer matcher, the DABench
matcher and the table comparison, so that "12.5%", "$1,234" or "Yes" mean the same thing
everywhere.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import math
import re
from dataclasses import dataclass

#: Literal/JSON parsing is skipped above this length (ast on megabytes is slow and recursive).
MAX_LITERAL_CHARS = 20_000

_MINUS = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": "-", "\uff0d": "-", "\u00a0": " "})
_CURRENCY = "$€£¥₹₩₽¢"
# A number with optional sign, thousands separators, decimals and exponent (incl. "x10^3").
_NUM = (
    r"[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d*)?|\.\d+)"
    r"(?:[eE][-+]?\d+|\s*[x×*]\s*10\s*\^\s*[-+]?\d+)?"
)
_NUM_RE = re.compile(_NUM)
# A number found in free text right after one of these ends an identifier ("r2", "sensor_57"): a name,
# not a number. Counting it made "Kcsv r2" match the gold answer 2 and "sensor_57 reads 12" look like
# two numbers. (ASCII only: "约为12" still mentions 12.)
_IDENTIFIER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
# A whole answer that is one number: currency prefix, number, optional percent or unit suffix.
_WHOLE_NUM_RE = re.compile(
    rf"^\s*(?P<sign>[-+]?)\s*[{_CURRENCY}]?\s*(?P<num>{_NUM})\s*(?P<pct>%|percent\b|pct\b)?"
    rf"\s*(?P<unit>[A-Za-z°µ/²³_ .{_CURRENCY}-]{{0,24}}?)\s*[.]?\s*$"
)
_SPECIAL_NUM = {
    "nan": math.nan,
    "inf": math.inf,
    "+inf": math.inf,
    "-inf": -math.inf,
    "infinity": math.inf,
    "-infinity": -math.inf,
}
_TRUE = {"true", "yes", "y", "t", "correct", "right"}
_FALSE = {"false", "no", "n", "f", "incorrect", "wrong"}
_BOOL_WORDS = {"true", "false", "yes", "no"}
_DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y.%m.%d",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%B %d, %Y",
    "%B %d %Y",
    "%b %d, %Y",
    "%b %d %Y",
    "%d %B %Y",
    "%d %b %Y",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%B %Y",
    "%b %Y",
    "%Y-%m",
)


@dataclass(frozen=True)
class Number:
    """A parsed number; ``percent`` says the text had a percent sign (so value/100 is also meant)."""

    value: float
    percent: bool = False

    def candidates(self) -> tuple[float, ...]:
        """The values the text may stand for: 45% is 45 or 0.45."""
        return (self.value, self.value / 100.0) if self.percent else (self.value,)


def as_text(x: object) -> str:
    """Any object as text, never raising (bytes are decoded leniently)."""
    if isinstance(x, str):
        return x
    if x is None:
        return ""
    try:
        if isinstance(x, (bytes, bytearray)):
            return bytes(x).decode("utf-8", "replace")
        return str(x)
    except Exception:  # noqa: BLE001 - a scorer input must never raise
        return ""


def clean(text: str) -> str:
    """Lower-case, unify minus signs, collapse whitespace, strip quotes and a trailing period."""
    t = " ".join(text.translate(_MINUS).lower().split())
    for _ in range(2):
        t = t.strip("'\"`* ")
        if t.endswith(".") and not (len(t) >= 2 and t[-2].isdigit()):
            t = t[:-1]
    return t.strip()


_POW10_RE = re.compile(r"^([-+]?[\d.]+)[x×*]10\^([-+]?\d+)$")


def _to_float(num: str) -> float | None:
    s = num.replace(",", "").replace(" ", "")
    try:
        return float(s)
    except ValueError:
        pass
    except OverflowError:
        return None
    m = _POW10_RE.match(s)
    if not m:
        return None
    try:
        return float(m.group(1)) * 10.0 ** int(m.group(2))
    except (ValueError, OverflowError):
        return None


def parse_number(text: str) -> Number | None:
    """The number a whole answer states ("$1,234.5", "-3e-2", "45 %", "12 kg"), else ``None``."""
    t = text.translate(_MINUS).strip()
    if len(t) > 200:
        return None
    low = t.lower().rstrip(".")
    if low in _SPECIAL_NUM:
        return Number(_SPECIAL_NUM[low])
    m = _WHOLE_NUM_RE.match(t)
    if not m:
        return None
    unit = (m.group("unit") or "").strip()
    # A trailing word that is a whole sentence is not a unit ("5 apples are red").
    if len(unit.split()) > 2:
        return None
    v = _to_float(m.group("num"))
    if v is None:
        return None
    if m.group("sign") == "-":
        v = -v
    return Number(v, percent=bool(m.group("pct")))


def numbers_in(text: str, limit: int = 64) -> list[Number]:
    """Every number mentioned in free text (at most ``limit``), percent signs kept; digits that end
    an identifier (a letter or underscore right before them) are not a number."""
    out: list[Number] = []
    t = text.translate(_MINUS)
    for m in _NUM_RE.finditer(t):
        if m.start() and t[m.start() - 1] in _IDENTIFIER_CHARS:
            continue
        v = _to_float(m.group(0))
        if v is None:
            continue
        pct = t[m.end() : m.end() + 2].lstrip().startswith("%")
        out.append(Number(v, percent=pct))
        if len(out) >= limit:
            break
    return out


def parse_bool(text: str) -> bool | None:
    """True/false, yes/no (and a few synonyms) as a bool, else ``None``."""
    c = clean(text)
    if c in _TRUE:
        return True
    if c in _FALSE:
        return False
    return None


_DATE_SHAPE_RE = re.compile(
    r"^(?:\d{4}[-/.]\d{1,2}(?:[-/.]\d{1,2})?(?:[ t]\d{1,2}:\d{2}(?::\d{2})?)?"
    r"|\d{1,2}[/.]\d{1,2}[/.]\d{4}"
    r"|(?:\d{1,2} )?[a-z]{3,9}\.?(?: \d{1,2},?)? \d{4})$"
)


def parse_date(text: str) -> dt.datetime | None:
    """A date or date-time in one of the common formats, else ``None``."""
    t = clean(text)
    if not (6 <= len(t) <= 40) or not _DATE_SHAPE_RE.match(t):
        return None  # cheap shape test first: strptime over every format is slow
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(t, fmt)  # month names match case-insensitively
        except ValueError:
            continue
        except Exception:  # noqa: BLE001
            return None
    return None


def parse_literal(text: str) -> object | None:
    """A JSON or Python literal list/tuple/set/dict written in the answer, else ``None``."""
    t = text.strip()
    if not t or len(t) > MAX_LITERAL_CHARS or t[0] not in "[({":
        return None
    for loader in (json.loads, ast.literal_eval):
        try:
            v = loader(t)
        except Exception:  # noqa: BLE001 - SyntaxError, ValueError, RecursionError, MemoryError
            continue
        if isinstance(v, (list, tuple, set, frozenset, dict)):
            return v
    return None


def split_items(text: str) -> list[str] | None:
    """Split "a, b, c" / "a; b" / one item per line into items; ``None`` if it is one item.

    Commas inside numbers ("1,234") are thousands separators, not item separators.
    """
    t = text.strip()
    if not t or len(t) > MAX_LITERAL_CHARS:
        return None
    for sep in ("\n", ";", "|"):
        if sep in t:
            items = [i.strip(" -*•\t") for i in t.split(sep)]
            items = [i for i in items if i]
            return items if len(items) > 1 else None
    if "," in t and parse_number(t) is None and parse_date(t) is None:
        items = [i.strip() for i in t.split(",")]
        items = [i for i in items if i]
        return items if len(items) > 1 else None
    return None


def is_bool_word(text: str) -> bool:
    return clean(text) in _BOOL_WORDS

"""Programmatic task generator: executable pandas programs composed easy → hard.

A task is a chain of operations; each operation reads the previous result (a table, a per-group
series, a label or a number) and writes a new one, so the output of one task feeds the next
(recursive composition). Depth 1 is a single operation over the table; depth 5 chains five. Each
operation knows its taxonomy category, the code it runs, the reasoning text an expert would say,
and several ways to phrase it, so questions vary in wording as well as in columns and files.

Nothing here executes code: :func:`make_task_specs` only writes programs. The ground truth comes
from running the program in the interpreter (:mod:`datamind_ext.synthesis.execute`).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from datamind_ext.synthesis.profile import ColumnProfile, TableProfile, load_code
from datamind_ext.synthesis.roles import GROUP_ROLES, MEASURE_ROLES
from datamind_ext.synthesis.store import content_key

ValueType = Literal["table", "groups", "label", "number"]
TERMINAL: tuple[ValueType, ...] = ("number", "label")


class Cell(BaseModel):
    """One step of an expert program: what the expert thinks, then the code it runs."""

    model_config = ConfigDict(extra="forbid")  # stored in stage files: unknown keys refused

    think: str
    code: str


class TaskSpec(BaseModel):
    """A task before execution: question, program, provenance."""

    model_config = ConfigDict(extra="forbid")  # stored in stage files: unknown keys refused

    key: str
    question: str
    category: str
    chain: list[dict[str, Any]] = Field(description="[{op, category, measures}] in execution order (measures: the "
                                        "columns the step uses as quantities, for the audit)")
    depth: int
    difficulty: str
    table_key: str
    table_label: str
    file_format: str
    files: list[str]
    answer_kind: Literal["number", "label"] | None = None
    cells: list[Cell] = Field(default_factory=list)
    load_code: str = Field("", description="the program's opening lines that load the table as `df` (shared by "
                           "the programs of one table when verifying them; empty: never shared)")
    verify_code: str = Field("", description="the program with well-posedness checks after each step: run for the "
                             "ground truth (a failed check rejects the task with its reason); empty: the cells")
    ablations: list[dict[str, str]] = Field(default_factory=list, description="[{op, code}]: the program with one "
                                            "step replaced by the identity; each must print another answer")
    seed: int
    source: Literal["programmatic", "llm"] = "programmatic"


@dataclass
class State:
    """What the chain has produced so far."""

    var: str = "df"
    type: ValueType = "table"
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    label_col: str | None = None  # the categorical column a label / groups value refers to
    used_cats: set[str] = field(default_factory=set)
    measure: str = "value"  # what a groups/number value measures, in words
    group_word: str = ""  # what the groups of a groups value are, in words, when not a column
    prefer: list[str] = field(default_factory=list)  # derived columns a later step must use
    flags: list[str] = field(default_factory=list)  # binary columns (averaged only as a share)


@dataclass
class Step:
    op: str
    category: str
    code: str
    think: str
    say: str  # imperative phrase, when the step is not the last
    ask: str  # question phrase, when the step is the last
    state: State
    check: str = ""  # verification-only lines after the step (raise RuntimeError('ill_posed:<rule>'))
    measures: list[str] = field(default_factory=list)  # columns the step uses as measures (for the audit)
    derived: str | None = None  # the column the step adds
    inp: str = ""  # the variable the step reads (set by compose_chain)


@dataclass(frozen=True)
class Op:
    name: str
    category: str
    inp: ValueType
    out: ValueType
    build: Callable[[random.Random, State, TableProfile, str], Step | None]


def _fmt_num(x: float) -> str:
    return f"{x:g}" if abs(x) >= 1 else f"{x:.2g}"


def _threshold(c: ColumnProfile, rng: random.Random) -> float:
    """A threshold inside the column's range, rounded to a number a person would say."""
    lo, hi = float(c.min), float(c.max)
    q = rng.uniform(0.3, 0.7)
    x = lo + q * (hi - lo)
    mag = 10 ** max(len(str(int(abs(x)))) - 2, 0) if abs(x) >= 10 else 1
    return round(x / mag) * mag if abs(x) >= 10 else round(x, 1)


def _pick(rng: random.Random, xs: list[str]) -> str:
    return xs[rng.randrange(len(xs))]


def _pick_num(rng: random.Random, s: State, names: list[str]) -> str:
    """A measure column: a derived column still waiting to be used comes first."""
    preferred = [n for n in s.prefer if n in names]
    return preferred[0] if preferred else names[rng.randrange(len(names))]


def _dt(var: str, col: str, prof: TableProfile) -> str:
    """Code parsing a date column with the format the profiler found (pandas' own parser)."""
    c = prof.column(col)
    fmt = f", format={c.date_format!r}" if c is not None and c.date_format else ""
    return f"pd.to_datetime({var}[{col!r}]{fmt}, errors='coerce')"


def _raise(rule: str) -> str:
    return f"raise RuntimeError('ill_posed:{rule}')"


#: fewest rows a selection may keep (fewer: the answer rests on a handful of rows)
MIN_ROWS = 5


# ---------------------------------------------------------------- table → table


def _filter_numeric(rng, s, prof, out):
    cols = [c for c in prof.columns if c.name in s.numeric and c.min is not None and c.max != c.min
            and f"num:{c.name}" not in s.used_cats]
    if not cols:
        return None
    c = cols[rng.randrange(len(cols))]
    thr = _threshold(c, rng)
    op = _pick(rng, [">", "<"])
    word = "above" if op == ">" else "below"
    ns = State(out, "table", s.numeric, s.categorical, s.dates, s.label_col, s.used_cats | {f"num:{c.name}"}, s.measure)
    return Step("filter_numeric", "counting", f"{out} = {s.var}[{s.var}[{c.name!r}] {op} {_fmt_num(thr)}]\nprint(len({out}))",
                f"I keep only the rows where {c.name} is {word} {_fmt_num(thr)} and check how many remain.",
                _pick(rng, [f"keep only the rows where {c.name} is {word} {_fmt_num(thr)}",
                            f"restrict the data to rows with {c.name} {word} {_fmt_num(thr)}"]),
                f"how many rows have {c.name} {word} {_fmt_num(thr)}?", ns, measures=[c.name])


def _filter_category(rng, s, prof, out):
    cols = [c for c in prof.columns if c.name in s.categorical and c.name not in s.used_cats and len(c.top_values) >= 2]
    if not cols:
        return None
    c = cols[rng.randrange(len(cols))]
    v = c.top_values[rng.randrange(min(3, len(c.top_values)))]
    ns = State(out, "table", s.numeric, s.categorical, s.dates, s.label_col, s.used_cats | {c.name}, s.measure)
    return Step("filter_category", "counting", f"{out} = {s.var}[{s.var}[{c.name!r}].astype(str) == {v!r}]\nprint(len({out}))",
                f"I select the rows whose {c.name} is {v}.",
                _pick(rng, [f"consider only rows where {c.name} is {v!r}", f"look only at the {v!r} {c.name} rows"]),
                f"how many rows have {c.name} equal to {v!r}?", ns)


def _dropna(rng, s, prof, out):
    cols = [c for c in prof.columns if c.name in s.numeric and c.missing > 0]
    if not cols:
        return None
    c = cols[rng.randrange(len(cols))]
    ns = State(out, "table", s.numeric, s.categorical, s.dates, s.label_col, set(s.used_cats), s.measure)
    return Step("dropna", "comprehensive_data_preprocessing",
                f"print({s.var}[{c.name!r}].isna().sum())\n{out} = {s.var}.dropna(subset=[{c.name!r}])\nprint(len({out}))",
                f"{c.name} has missing values; I drop those rows first.",
                _pick(rng, [f"drop the rows where {c.name} is missing", f"remove rows with a missing {c.name}"]),
                f"how many rows remain after dropping rows with a missing {c.name}?", ns)


def _fillna_median(rng, s, prof, out):
    cols = [c for c in prof.columns if c.name in s.numeric and c.missing > 0]
    if not cols:
        return None
    c = cols[rng.randrange(len(cols))]
    ns = State(out, "table", s.numeric, s.categorical, s.dates, s.label_col, set(s.used_cats), s.measure)
    return Step("fillna_median", "comprehensive_data_preprocessing",
                f"{out} = {s.var}.copy()\n{out}[{c.name!r}] = {out}[{c.name!r}].fillna({out}[{c.name!r}].median())\n"
                f"print({out}[{c.name!r}].isna().sum())",
                f"I fill the missing {c.name} values with the column median.",
                _pick(rng, [f"fill missing {c.name} values with the median of {c.name}",
                            f"impute the missing {c.name} with its median"]),
                f"after filling missing {c.name} with the median, what is the mean {c.name}?", ns)


def _derive_ratio(rng, s, prof, out):
    nums = [c for c in prof.columns if c.name in s.numeric and c.min is not None]
    pos = [c for c in nums if float(c.min) > 0]
    if len(nums) < 2 or not pos:
        return None
    pairs = [(a, b) for b in pos for a in nums if a.name != b.name and sensible_ratio(a.name, b.name)]
    if not pairs:
        return None
    a, b = pairs[rng.randrange(len(pairs))]
    new = f"{a.name}_per_{b.name}"
    if new in s.numeric:
        return None
    ns = State(out, "table", s.numeric + [new], s.categorical, s.dates, s.label_col, set(s.used_cats), s.measure)
    both = f"{out}[{a.name!r}].notna() & {out}[{b.name!r}].notna()"
    return Step("derive_ratio", "feature_engineering",
                f"{out} = {s.var}.copy()\n{out}[{new!r}] = {out}[{a.name!r}] / {out}[{b.name!r}]\nprint({out}[{new!r}].describe().round(2))",
                f"I add a feature {new} = {a.name} / {b.name}.",
                _pick(rng, [f"add a column {new} equal to {a.name} divided by {b.name}",
                            f"derive {new} as {a.name} / {b.name} for every row"]),
                f"what is the mean of {new} = {a.name} / {b.name}?", ns,
                check=f"if not _np.isfinite({out}.loc[{both}, {new!r}].astype(float)).all():\n    {_raise('nan_on_path')}",
                measures=[a.name, b.name], derived=new)


#: names of quantities that other quantities are commonly expressed per (a rate's denominator)
_DENOMINATOR = re.compile(r"(pop|population|total|area|count|^n$|^n_|number|size|households|units|qty|quantity|hours|"
                          r"days|weeks|months|years|minutes|seconds|duration|time|distance|miles|km|weight|wt|mass|"
                          r"employees|staff|members|seats|sales|revenue|income|gdp|capital|value|assets)", re.IGNORECASE)


def _tokens(name: str) -> set[str]:
    return {t for t in re.split(r"[^a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", name).lower()) if len(t) >= 3}


def sensible_ratio(a: str, b: str) -> bool:
    """Whether ``a / b`` reads as a rate an analyst would compute: ``b`` names a usual denominator
    (population, area, hours, units, ...) or both name the same kind of thing (``Min.Price`` /
    ``Max.Price``, ``re74`` / ``re75``). Two unrelated columns (years of service per salary) are not."""
    if _DENOMINATOR.search(b) or _tokens(a) & _tokens(b):
        return True
    return bool(re.sub(r"\d+", "", a.lower()) == re.sub(r"\d+", "", b.lower()) and re.search(r"\d", a))


def _filter_year(rng, s, prof, out):
    cols = [c for c in prof.columns if c.name in s.dates and isinstance(c.min, str) and isinstance(c.max, str)]
    if not cols:
        return None
    c = cols[rng.randrange(len(cols))]
    y0, y1 = int(c.min[:4]), int(c.max[:4])
    if y0 == y1:
        return None
    y = rng.randint(y0, y1)
    ns = State(out, "table", s.numeric, s.categorical, s.dates, s.label_col, set(s.used_cats), s.measure)
    return Step("filter_year", "time_based_calculation",
                f"{out} = {s.var}[{_dt(s.var, c.name, prof)}.dt.year == {y}]\nprint(len({out}))",
                f"I parse {c.name} as dates and keep the rows from {y}.",
                _pick(rng, [f"keep the rows whose {c.name} falls in {y}", f"restrict to records dated in {y} (by {c.name})"]),
                f"how many rows have {c.name} in {y}?", ns)


def _filter_label(rng, s, prof, out):
    if s.label_col is None:
        return None
    original = [n for n in s.numeric if prof.column(n) is not None]  # derived columns are not in df
    ns = State(out, "table", original, s.categorical, s.dates, None, s.used_cats | {s.label_col}, s.measure)
    return Step("filter_label", "multi_hop_numerical_reasoning",
                f"{out} = df[df[{s.label_col!r}].astype(str) == str({s.var})]\nprint(len({out}))",
                f"Now I take the rows of the original table whose {s.label_col} is that {s.label_col}.",
                _pick(rng, [f"go back to the full table and keep the rows of that {s.label_col}",
                            f"take all rows belonging to that {s.label_col}"]),
                f"how many rows belong to that {s.label_col}?", ns)


# ---------------------------------------------------------------- table → groups


def _group_agg(agg: str, category: str):
    def build(rng, s, prof, out):
        cats = [c for c in s.categorical if c not in s.used_cats]
        if not cats or not s.numeric:
            return None
        cat, num = cats[rng.randrange(len(cats))], _pick_num(rng, s, s.numeric)
        word = {"mean": "average", "sum": "total"}[agg]
        ns = State(out, "groups", s.numeric, s.categorical, s.dates, cat, s.used_cats | {cat}, f"{word} {num}")
        return Step(f"group_{agg}", category,
                    f"{out} = {s.var}.groupby({cat!r})[{num!r}].{agg}()\nprint({out}.round(2))",
                    f"I compute the {word} {num} for each {cat}.",
                    _pick(rng, [f"compute the {word} {num} for each {cat}", f"work out the {word} {num} per {cat}"]),
                    f"what is the {word} {num} of each {cat}?", ns, measures=[num])
    return build


def _value_counts(rng, s, prof, out):
    cats = [c for c in s.categorical if c not in s.used_cats]
    if not cats:
        return None
    cat = cats[rng.randrange(len(cats))]
    ns = State(out, "groups", s.numeric, s.categorical, s.dates, cat, s.used_cats | {cat}, "number of rows")
    return Step("value_counts", "distribution_analysis", f"{out} = {s.var}[{cat!r}].astype(str).value_counts()\nprint({out})",
                f"I count how many rows fall in each {cat}.",
                _pick(rng, [f"count the rows per {cat}", f"tally how often each {cat} occurs"]),
                f"how many rows does each {cat} have?", ns)


def _year_totals(rng, s, prof, out):
    if not s.dates or not s.numeric:
        return None
    d, num = s.dates[rng.randrange(len(s.dates))], _pick_num(rng, s, s.numeric)
    unit = _pick(rng, ["month", "year", "weekday"])
    part = {"month": "month", "year": "year", "weekday": "dayofweek"}[unit]
    ns = State(out, "groups", s.numeric, s.categorical, s.dates, None, set(s.used_cats), f"{unit}ly total of {num}"
               if unit != "weekday" else f"total {num} per weekday")
    lab = {"month": "month (1-12)", "year": "year", "weekday": "weekday (0 = Monday)"}[unit]
    ns.group_word = lab
    return Step("time_totals", "time_based_calculation",
                f"{out} = {s.var}.groupby({_dt(s.var, d, prof)}.dt.{part})[{num!r}].sum()\nprint({out}.round(2))",
                f"I parse {d} as dates, group by its {unit} and sum {num}.",
                _pick(rng, [f"sum {num} by {lab} of {d}", f"total {num} for each {lab} (from {d})"]),
                f"what is the total {num} per {lab} of {d}?", ns, measures=[num])


# ---------------------------------------------------------------- groups → label / number


def _top_label(largest: bool):
    def build(rng, s, prof, out):
        fn, word = ("idxmax", "highest") if largest else ("idxmin", "lowest")
        ext = "max" if largest else "min"
        lab = s.group_word or s.label_col or "group"
        ns = State(out, "label", s.numeric, s.categorical, s.dates, s.label_col, set(s.used_cats), s.measure)
        # a tie at the extreme (at the 2 decimals shown) makes the answer one of several
        tie = f"if ({s.var}.round(2) == round({s.var}.{ext}(), 2)).sum() > 1:\n    {_raise('tie')}"
        return Step(f"{'top' if largest else 'bottom'}_label", "ranking", f"{out} = {s.var}.{fn}()\nprint({out})",
                    f"The {lab} with the {word} {s.measure} is what I need.",
                    _pick(rng, [f"find the {lab} with the {word} {s.measure}", f"take the {lab} ranked {word} by {s.measure}"]),
                    _pick(rng, [f"which {lab} has the {word} {s.measure}?", f"which {lab} ranks {word} by {s.measure}?"]), ns,
                    check=tie)
    return build


def _spread(rng, s, prof, out):
    ns = State(out, "number", s.numeric, s.categorical, s.dates, None, set(s.used_cats), s.measure)
    lab = s.group_word or s.label_col or "group"
    return Step("spread", "comparison", f"{out} = {s.var}.max() - {s.var}.min()\nprint(round(float({out}), 2))",
                f"I compare the largest and smallest {s.measure} across {lab} values.",
                f"take the gap between the largest and smallest {s.measure}",
                _pick(rng, [f"what is the difference between the highest and lowest {s.measure} across {lab} values?",
                            f"by how much does the largest {s.measure} exceed the smallest one (across {lab})?"]), ns)


def _top_share(rng, s, prof, out):
    if s.measure.startswith("average"):  # a share of a sum of averages means nothing
        return None
    ns = State(out, "number", s.numeric, s.categorical, s.dates, None, set(s.used_cats), s.measure)
    lab = s.group_word or s.label_col or "group"
    return Step("top_share", "distribution_analysis", f"{out} = {s.var}.max() / {s.var}.sum() * 100\nprint(round(float({out}), 2))",
                f"I divide the largest {s.measure} by the sum over all {lab} values.",
                "take the largest group's share of the total",
                f"what percentage of the overall total does the top {lab} account for (by {s.measure})?", ns,
                check=f"if ({s.var}.round(2) == round({s.var}.max(), 2)).sum() > 1:\n    {_raise('tie')}")


# ---------------------------------------------------------------- table → number / label


def _num_stat(name: str, category: str, expr: str, words: list[str], think: str):
    def build(rng, s, prof, out):
        if not s.numeric:
            return None
        num = _pick_num(rng, s, s.numeric)
        w = _pick(rng, words).format(num=num)
        ns = State(out, "number", s.numeric, s.categorical, s.dates, None, set(s.used_cats), w)
        return Step(name, category, f"{out} = {expr.format(v=s.var, num=repr(num))}\nprint(round(float({out}), 2))",
                    think.format(num=num), f"compute the {w}", f"what is the {w}?", ns, measures=[num])
    return build


def _count_above(rng, s, prof, out):
    cols = [c for c in prof.columns if c.name in s.numeric and c.min is not None and c.max != c.min]
    if not cols:
        return None
    c = cols[rng.randrange(len(cols))]
    thr = _threshold(c, rng)
    ns = State(out, "number", s.numeric, s.categorical, s.dates, None, set(s.used_cats), "count")
    return Step("count_above", "counting", f"{out} = int(({s.var}[{c.name!r}] > {_fmt_num(thr)}).sum())\nprint({out})",
                f"I count the rows with {c.name} greater than {_fmt_num(thr)}.",
                f"count the rows with {c.name} above {_fmt_num(thr)}",
                _pick(rng, [f"how many rows have {c.name} greater than {_fmt_num(thr)}?",
                            f"how many records show a {c.name} above {_fmt_num(thr)}?"]), ns, measures=[c.name])


def _nunique(rng, s, prof, out):
    cats = [c for c in s.categorical if c not in s.used_cats]
    if not cats:
        return None
    cat = cats[rng.randrange(len(cats))]
    ns = State(out, "number", s.numeric, s.categorical, s.dates, None, set(s.used_cats), "distinct count")
    return Step("nunique", "counting", f"{out} = {s.var}[{cat!r}].nunique()\nprint({out})",
                f"I count the distinct values of {cat}.", f"count the distinct {cat} values",
                _pick(rng, [f"how many distinct {cat} values are there?", f"how many different {cat} values appear?"]), ns)


def _corr(rng, s, prof, out):
    if len(s.numeric) < 2:
        return None
    a = _pick_num(rng, s, s.numeric)
    b = _pick(rng, [n for n in s.numeric if n != a])
    ns = State(out, "number", s.numeric, s.categorical, s.dates, None, set(s.used_cats), "correlation")
    return Step("corr", "correlation_analysis", f"{out} = {s.var}[{a!r}].corr({s.var}[{b!r}])\nprint(round(float({out}), 2))",
                f"I compute the Pearson correlation between {a} and {b}.", f"compute the correlation of {a} and {b}",
                _pick(rng, [f"what is the Pearson correlation between {a} and {b} (rows where both are present)?",
                            f"how strongly are {a} and {b} correlated (Pearson r, rows where both are present)?"]), ns,
                measures=[a, b])


def _zscore_outliers(rng, s, prof, out):
    if not s.numeric:
        return None
    num = _pick_num(rng, s, s.numeric)
    k = rng.choice([2, 2.5, 3])
    ns = State(out, "number", s.numeric, s.categorical, s.dates, None, set(s.used_cats), "outlier count")
    conv = "z = (x - mean) / sample standard deviation (ddof=1), missing values ignored"
    return Step("zscore_outliers", "anomaly_detection",
                f"x = {s.var}[{num!r}].dropna()\nz = (x - x.mean()) / x.std()\n{out} = int((z.abs() > {k}).sum())\nprint({out})",
                f"I flag {num} values whose z-score exceeds {k} in absolute value.", f"count the {num} outliers with |z| > {k} ({conv})",
                _pick(rng, [f"how many {num} values have a z-score above {k} in absolute value ({conv})?",
                            f"how many rows are outliers in {num} by the |z| > {k} rule, with {conv}?"]), ns, measures=[num])


def _iqr_outliers(rng, s, prof, out):
    if not s.numeric:
        return None
    num = _pick_num(rng, s, s.numeric)
    ns = State(out, "number", s.numeric, s.categorical, s.dates, None, set(s.used_cats), "outlier count")
    return Step("iqr_outliers", "anomaly_detection",
                f"x = {s.var}[{num!r}].dropna()\nq1, q3 = x.quantile(0.25), x.quantile(0.75)\niqr = q3 - q1\n"
                f"{out} = int(((x < q1 - 1.5 * iqr) | (x > q3 + 1.5 * iqr)).sum())\nprint({out})",
                f"I use the 1.5 IQR fences on {num}.", f"count the {num} values outside the 1.5 IQR fences",
                f"how many {num} values lie outside 1.5 IQR of the quartiles (pandas' default linear quantiles)?", ns,
                measures=[num])


def _impact(rng, s, prof, out):
    cats = [c for c in prof.columns if c.name in s.categorical and c.name not in s.used_cats and len(c.top_values) >= 2]
    if not cats or not s.numeric:
        return None
    c = cats[rng.randrange(len(cats))]
    v, num = c.top_values[0], _pick_num(rng, s, s.numeric)
    ns = State(out, "number", s.numeric, s.categorical, s.dates, None, set(s.used_cats), "difference")
    mask = f"{s.var}[{c.name!r}].astype(str) == {v!r}"
    sizes = f"_k = int(({mask}).sum())\nif _k < {MIN_ROWS} or len({s.var}) - _k < {MIN_ROWS}:\n    {_raise('tiny_selection')}"
    return Step("impact", "impact_analysis",
                f"with_v = {s.var}.loc[{mask}, {num!r}].mean()\nwithout_v = {s.var}.loc[~({mask}), {num!r}].mean()\n"
                f"print(round(with_v, 2), round(without_v, 2))\n{out} = with_v - without_v\nprint(round(float({out}), 2))",
                f"I compare the mean {num} of {c.name} = {v} against all other rows.",
                f"compute how much higher the mean {num} is for {c.name} {v!r} than for the other rows",
                f"how much does the average {num} for {c.name} {v!r} differ from that of all other rows (first minus second)?", ns,
                check=sizes, measures=[num])


def _causal(rng, s, prof, out):
    if len(s.numeric) < 2:
        return None
    cause = _pick_num(rng, s, s.numeric)
    outcome = _pick(rng, [n for n in s.numeric if n != cause])
    ns = State(out, "number", s.numeric, s.categorical, s.dates, None, set(s.used_cats), "effect")
    return Step("causal_split", "causal_analysis",
                f"high = {s.var}[{cause!r}] > {s.var}[{cause!r}].median()\n"
                f"{out} = {s.var}.loc[high, {outcome!r}].mean() - {s.var}.loc[~high, {outcome!r}].mean()\nprint(round(float({out}), 2))",
                f"I split rows at the median {cause} and compare mean {outcome} between the halves.",
                f"compare the mean {outcome} of rows above and at-or-below the median {cause}",
                f"how much higher is the mean {outcome} when {cause} is above its median than when it is not?", ns,
                check=f"if high.sum() < {MIN_ROWS} or (~high).sum() < {MIN_ROWS}:\n    {_raise('tiny_selection')}",
                measures=[cause, outcome])


def _fact_check(rng, s, prof, out):
    cols = [c for c in prof.columns if c.name in s.numeric and c.mean is not None]
    if not cols:
        return None
    c = cols[rng.randrange(len(cols))]
    thr = round(float(c.mean) * rng.choice([0.8, 0.9, 1.1, 1.2]), 1)
    ns = State(out, "label", s.numeric, s.categorical, s.dates, None, set(s.used_cats), "claim")
    # a mean of nothing (NaN) would read as "no"; a mean within 1 % of the claim is a coin toss
    claim = (f"if not _np.isfinite(m):\n    {_raise('nan_on_path')}\n"
             f"if abs(m - {thr}) <= 0.01 * max(abs({thr}), 1e-9):\n    {_raise('borderline_claim')}")
    return Step("fact_check", "fact_checking",
                f"m = {s.var}[{c.name!r}].mean()\nprint(round(m, 2))\n{out} = 'yes' if m > {thr} else 'no'\nprint({out})",
                f"I check the claim by computing the mean {c.name} and comparing it with {thr}.",
                f"check whether the mean {c.name} exceeds {thr}",
                _pick(rng, [f"is the average {c.name} greater than {thr}? Answer yes or no.",
                            f"true or false (answer yes or no): the mean {c.name} is above {thr}."]), ns,
                check=claim, measures=[c.name])


def _weighted_ratio(rng, s, prof, out):
    """A domain formula: an overall rate is a ratio of totals (revenue per unit, kWh per day…),
    not the mean of per-row ratios — the usual mistake this task type checks."""
    nums = [c for c in prof.columns if c.name in s.numeric and c.min is not None and float(c.min) >= 0]
    if len(nums) < 2:
        return None
    pairs = [(a, b) for a in nums for b in nums if a.name != b.name and sensible_ratio(a.name, b.name)]
    if not pairs:
        return None
    a, b = pairs[rng.randrange(len(pairs))]
    ns = State(out, "number", s.numeric, s.categorical, s.dates, None, set(s.used_cats), f"{a.name} per {b.name}")
    ratio_ok = f"if total_b == 0:\n    {_raise('nan_on_path')}"
    return Step("weighted_ratio", "domain_specific",
                f"total_a = {s.var}[{a.name!r}].sum()\ntotal_b = {s.var}[{b.name!r}].sum()\nprint(total_a, total_b)\n"
                f"{out} = total_a / total_b\nprint(round(float({out}), 2))",
                f"An overall rate is a ratio of totals: I divide the total {a.name} by the total {b.name}.",
                f"compute the overall {a.name} per {b.name} as total {a.name} divided by total {b.name}",
                _pick(rng, [f"what is the overall {a.name} per {b.name}, i.e. total {a.name} divided by total {b.name}?",
                            f"what is the aggregate rate of {a.name} per unit of {b.name} (ratio of the two totals)?"]), ns,
                check=ratio_ok, measures=[a.name, b.name])


def _label_share(rng, s, prof, out):
    """Share of rows with one label: how a binary flag or a category is summarised (not averaged)."""
    cols = [c for c in prof.columns if c.name in s.categorical + s.flags and c.name not in s.used_cats
            and len(c.top_values) >= 2]
    if not cols:
        return None
    c = cols[rng.randrange(len(cols))]
    v = c.top_values[rng.randrange(min(2, len(c.top_values)))]
    ns = State(out, "number", s.numeric, s.categorical, s.dates, None, set(s.used_cats), f"share of {c.name} {v}")
    return Step("label_share", "distribution_analysis",
                f"{out} = ({s.var}[{c.name!r}].astype(str) == {v!r}).mean() * 100\nprint(round(float({out}), 2))",
                f"I take the share of rows whose {c.name} is {v}, in percent.",
                f"compute the percentage of rows with {c.name} equal to {v!r}",
                _pick(rng, [f"what percentage of rows have {c.name} equal to {v!r}?",
                            f"what share of the records (in percent) has {c.name} {v!r}?"]), ns,
                check=f"if len({s.var}) < {MIN_ROWS}:\n    {_raise('tiny_selection')}")


def _row_count(rng, s, prof, out):
    ns = State(out, "number", s.numeric, s.categorical, s.dates, None, set(s.used_cats), "row count")
    return Step("row_count", "descriptive_analysis", f"{out} = len({s.var})\nprint({out})",
                "I count the rows.", "count the rows", _pick(rng, ["how many rows are there?", "how many records remain?"]), ns)


OPS: tuple[Op, ...] = (
    Op("filter_numeric", "counting", "table", "table", _filter_numeric),
    Op("filter_category", "counting", "table", "table", _filter_category),
    Op("dropna", "comprehensive_data_preprocessing", "table", "table", _dropna),
    Op("fillna_median", "comprehensive_data_preprocessing", "table", "table", _fillna_median),
    Op("derive_ratio", "feature_engineering", "table", "table", _derive_ratio),
    Op("filter_year", "time_based_calculation", "table", "table", _filter_year),
    Op("filter_label", "multi_hop_numerical_reasoning", "label", "table", _filter_label),
    Op("group_mean", "aggregation", "table", "groups", _group_agg("mean", "aggregation")),
    Op("group_sum", "aggregation", "table", "groups", _group_agg("sum", "aggregation")),
    Op("value_counts", "distribution_analysis", "table", "groups", _value_counts),
    Op("time_totals", "time_based_calculation", "table", "groups", _year_totals),
    Op("top_label", "ranking", "groups", "label", _top_label(True)),
    Op("bottom_label", "ranking", "groups", "label", _top_label(False)),
    Op("spread", "comparison", "groups", "number", _spread),
    Op("top_share", "distribution_analysis", "groups", "number", _top_share),
    Op("mean", "aggregation", "table", "number",
       _num_stat("mean", "aggregation", "{v}[{num}].mean()", ["average {num}", "mean {num}"], "I average {num}.")),
    Op("sum", "aggregation", "table", "number",
       _num_stat("sum", "aggregation", "{v}[{num}].sum()", ["total {num}", "sum of {num}"], "I add up {num}.")),
    Op("median", "descriptive_analysis", "table", "number",
       _num_stat("median", "descriptive_analysis", "{v}[{num}].median()", ["median {num}", "middle value (median) of {num}"],
                 "I take the median of {num}.")),
    Op("std", "statistical_analysis", "table", "number",
       _num_stat("std", "statistical_analysis", "{v}[{num}].std()",
                 ["sample standard deviation of {num} (ddof=1)", "standard deviation of {num} (sample, n-1 denominator)"],
                 "I compute the sample standard deviation of {num} (ddof=1).")),
    Op("var", "statistical_analysis", "table", "number",
       _num_stat("var", "statistical_analysis", "{v}[{num}].var()", ["sample variance of {num} (ddof=1)"],
                 "I compute the sample variance of {num} (ddof=1).")),
    Op("skew", "distribution_analysis", "table", "number",
       _num_stat("skew", "distribution_analysis", "{v}[{num}].skew()",
                 ["sample skewness of {num} (bias-corrected Fisher-Pearson, as pandas .skew())"],
                 "I measure the bias-corrected sample skewness of {num}.")),
    Op("kurtosis", "distribution_analysis", "table", "number",
       _num_stat("kurtosis", "distribution_analysis", "{v}[{num}].kurt()",
                 ["excess kurtosis of {num} (bias-corrected, as pandas .kurt())"],
                 "I compute the bias-corrected excess kurtosis of {num}.")),
    Op("range_pct", "arithmetic_calculation", "table", "number",
       _num_stat("range_pct", "arithmetic_calculation", "({v}[{num}].max() - {v}[{num}].min()) / {v}[{num}].mean() * 100",
                 ["range of {num} as a percentage of its mean"], "I divide the range of {num} by its mean and multiply by 100.")),
    Op("count_above", "counting", "table", "number", _count_above),
    Op("nunique", "counting", "table", "number", _nunique),
    Op("corr", "correlation_analysis", "table", "number", _corr),
    Op("zscore_outliers", "anomaly_detection", "table", "number", _zscore_outliers),
    Op("iqr_outliers", "anomaly_detection", "table", "number", _iqr_outliers),
    Op("impact", "impact_analysis", "table", "number", _impact),
    Op("causal_split", "causal_analysis", "table", "number", _causal),
    Op("fact_check", "fact_checking", "table", "label", _fact_check),
    Op("weighted_ratio", "domain_specific", "table", "number", _weighted_ratio),
    Op("label_share", "distribution_analysis", "table", "number", _label_share),
    Op("row_count", "descriptive_analysis", "table", "number", _row_count),
)

#: Categories the programmatic generator covers (the rest need an LLM generator).
PROGRAMMATIC_CATEGORIES: frozenset[str] = frozenset(o.category for o in OPS)


@cache
def can_finish(t: ValueType, remaining: int, ops: tuple[Op, ...] = OPS) -> bool:
    """Whether a chain at type ``t`` can end at a terminal type in exactly ``remaining`` more
    steps of ``ops``."""
    if remaining == 0:
        return t in TERMINAL
    return any(can_finish(o.out, remaining - 1, ops) for o in ops if o.inp == t)


def select_ops(names: list[str] | None) -> tuple[Op, ...]:
    """The operations named (in OPS order), or all of them for ``None``."""
    return OPS if names is None else tuple(o for o in OPS if o.name in set(names))


#: operations whose result is a whole number (no rounding instruction in the question)
INTEGER_OPS = frozenset({"count_above", "nunique", "zscore_outliers", "iqr_outliers", "row_count"})
#: categories too generic to name a composed task by
GENERIC = frozenset({"aggregation", "descriptive_analysis", "counting"})


def chain_category(steps: list[Step]) -> str:
    """The category a composed task is filed under: multi-hop if it hops through a label, time-based
    if a step works on dates, else the last operation's category unless generic, then the last
    specific one in the chain."""
    if any(st.op == "filter_label" for st in steps):
        return "multi_hop_numerical_reasoning"
    if any(st.category == "time_based_calculation" for st in steps):  # the dates are the hard part
        return "time_based_calculation"
    for st in reversed(steps):
        if st.category not in GENERIC:
            return st.category
    return steps[-1].category


CONNECTORS = ["Then", "Next", "After that", "Using that result", "From there"]
OPENERS = ["Using {f}", "In {f}", "Working with {f}", "For the data in {f}", "Based on {f}"]


def _difficulty(depth: int) -> str:
    return {1: "easy", 2: "easy", 3: "medium", 4: "hard"}.get(depth, "hard")


def initial_state(prof: TableProfile) -> State:
    """Columns by what they may be used for (roles, see :mod:`roles`): statistics take measures and
    counts only, group-bys and filters take categories (binary flags, ordinal codes, years), time
    operations take dates; identifiers and free text are never used."""
    return State(
        numeric=[c.name for c in prof.columns if c.role in MEASURE_ROLES and c.n_unique >= 3],
        categorical=[c.name for c in prof.columns if c.role in GROUP_ROLES and c.n_unique >= 2],
        dates=[c.name for c in prof.columns if c.role == "date"],
        flags=[c.name for c in prof.columns if c.role == "binary"],
    )


def _final_check(step: Step) -> str:
    """Checks every chain gets on its last value: finite, not a degenerate zero."""
    v = step.state.var
    if step.state.type == "number":
        return (f"if not _np.isfinite(float({v})):\n    {_raise('nan_on_path')}\n"
                f"if round(float({v}), 2) == 0:\n    {_raise('zero_answer')}")
    return f"if str({v}).strip().lower() in ('', 'nan', 'none', 'nat'):\n    {_raise('nan_on_path')}"


def _type_check(step: Step) -> str:
    """Checks on an intermediate value by its type (an empty or tiny table, NaN in groups)."""
    v = step.state.var
    if step.state.type == "table":
        return f"if len({v}) < {MIN_ROWS}:\n    {_raise('tiny_selection')}"
    if step.state.type == "groups":
        return (f"if len({v}) < 2:\n    {_raise('single_group')}\n"
                f"if {v}.isna().any() or not _np.isfinite({v}.astype(float)).all():\n    {_raise('nan_on_path')}")
    if step.state.type == "number":
        return f"if not _np.isfinite(float({v})):\n    {_raise('nan_on_path')}"
    return ""


def compose_chain(prof: TableProfile, depth: int, rng: random.Random, max_tries: int = 30,
                  ops: tuple[Op, ...] = OPS, rejected: Counter[str] | None = None) -> list[Step] | None:
    """A random chain of exactly ``depth`` applicable ``ops`` ending in a number or label, in which
    every derived column is used by a later step (else it is retried; ``rejected`` counts why)."""
    for _ in range(max_tries):
        s, steps = initial_state(prof), []
        for i in range(depth):
            remaining = depth - i - 1
            cands = [o for o in ops if o.inp == s.type and can_finish(o.out, remaining, ops)]
            rng.shuffle(cands)
            step = None
            for o in cands:
                step = o.build(rng, s, prof, f"r{i + 1}")
                if step is not None:
                    break
            if step is None:
                break
            step.inp = s.var
            step.state.flags = s.flags
            step.state.prefer = [p for p in s.prefer if repr(p) not in step.code] + ([step.derived] if step.derived else [])
            steps.append(step)
            s = step.state
        else:
            if s.prefer:
                if rejected is not None:
                    rejected["derived_column_unused"] += 1
                continue
            return steps
    if rejected is not None:
        rejected["no_applicable_chain"] += 1
    return None


def verify_program(prof: TableProfile, steps: list[Step], file_ref: str, skip: int | None = None) -> str:
    """The program run to get (and check) the ground truth: the load lines, then every step with
    its well-posedness checks. With ``skip``, step ``skip`` becomes the identity and no check runs:
    the ablation whose answer must differ from the ground truth."""
    lines = [load_program(prof, file_ref), "import numpy as _np"]
    for i, st in enumerate(steps):
        if i == skip:
            lines.append(f"{st.state.var} = {st.inp}")
            continue
        lines.append(st.code)
        if skip is None:
            lines += [x for x in (st.check, _type_check(st)) if x]
    if skip is None:
        lines.append(_final_check(steps[-1]))
        lines.append(f"print({steps[-1].state.var})" if steps[-1].state.type == "label"
                     else _last_print(steps[-1].code))
    return "\n".join(lines)


def _last_print(code: str) -> str:
    """The step's answer print, repeated after the checks so it stays the last printed line."""
    return [ln for ln in code.splitlines() if ln.startswith("print(")][-1]


def ablations(prof: TableProfile, steps: list[Step], file_ref: str) -> list[dict[str, str]]:
    """One program per step that maps a table to a table (filters, cleaning, derived columns):
    the chain without it. Steps that change the value's type cannot be dropped; they are needed."""
    return [{"op": st.op, "code": verify_program(prof, steps, file_ref, skip=i)}
            for i, st in enumerate(steps) if st.state.type == "table" and (i == 0 or steps[i - 1].state.type == "table")
            and st.op != "filter_label"]


def question_text(prof: TableProfile, steps: list[Step], rng: random.Random) -> str:
    opener = _pick(rng, OPENERS).format(f=prof.label)
    final = steps[-1].ask
    if len(steps) == 1:
        q = f"{opener}: {final[0].upper()}{final[1:]}"
    else:
        parts = [f"{opener}, {steps[0].say}."]
        for st in steps[1:-1]:
            parts.append(f"{_pick(rng, CONNECTORS)}, {st.say}.")
        parts.append(f"{final[0].upper()}{final[1:]}")
        q = " ".join(parts)
    if steps[-1].state.type == "number" and steps[-1].op not in INTEGER_OPS:
        q += " " + _pick(rng, ["Round to 2 decimal places.", "Give the number rounded to 2 decimals.", "Report it to 2 decimals."])
    return q


ExpertStyle = Literal["inspect_first", "direct"]


def load_program(prof: TableProfile, file_ref: str) -> str:
    """The lines every program of this table starts with: they load it as ``df``."""
    return "import pandas as pd\n" + load_code(prof, file_ref)


def program_cells(prof: TableProfile, steps: list[Step], file_ref: str, style: ExpertStyle = "inspect_first") -> list[Cell]:
    """The expert's cells; the last prints the answer.

    ``inspect_first``: a cell loads the table and prints its shape and first rows, then one cell
    per step (how an analyst meets a new file). ``direct``: one cell loads the table and runs every
    step, printing only the answer: a trajectory a few times shorter, which is what a tiny model
    can learn in minutes on a CPU (the quickstart).
    """
    load = load_program(prof, file_ref)
    if style == "direct":
        # only the last step's print is the answer; the intermediate prints would be noise
        codes = [st.code if i == len(steps) - 1 else _without_prints(st.code) for i, st in enumerate(steps)]
        think = " ".join([f"I load {prof.label}.", *(st.think for st in steps)])
        return [Cell(think=think, code="\n".join([load, *codes]))]
    head = load + "\nprint(df.shape)\nprint(df.head(3))"
    cells = [Cell(think=f"I start by loading {prof.label} and looking at its size and first rows.", code=head)]
    cells += [Cell(think=st.think, code=st.code) for st in steps]
    return cells


def _without_prints(code: str) -> str:
    return "\n".join(ln for ln in code.splitlines() if not ln.startswith("print("))


def make_task_specs(prof: TableProfile, n: int, seed: int, min_depth: int = 1, max_depth: int = 5,
                    file_ref: str | None = None, *, ops: list[str] | None = None,
                    style: ExpertStyle = "inspect_first", rejected: Counter[str] | None = None) -> list[TaskSpec]:
    """``n`` candidate tasks for one table, deterministic in (table content, seed); ``rejected``
    counts the candidates composition threw away, by rule."""
    rng = random.Random(f"{seed}|{prof.key}")
    allowed = select_ops(ops)
    specs, seen = [], set()
    for i in range(n * 3):
        if len(specs) >= n:
            break
        depth = min_depth + (i % (max_depth - min_depth + 1))
        steps = compose_chain(prof, depth, rng, ops=allowed, rejected=rejected)
        if steps is None:
            continue
        file = file_ref or prof.file_name
        cells = program_cells(prof, steps, file, style)
        sig = tuple(c.code for c in cells)
        if sig in seen:
            if rejected is not None:
                rejected["duplicate_program"] += 1
            continue
        seen.add(sig)
        question = question_text(prof, steps, rng)
        chain = [{"op": st.op, "category": st.category, "measures": list(st.measures)} for st in steps]
        key = content_key("programmatic", prof.key, question, [c.code for c in cells])
        specs.append(TaskSpec(
            key=key, question=question, category=chain_category(steps), chain=chain, depth=depth, difficulty=_difficulty(depth), table_key=prof.key,
            table_label=prof.label, file_format=prof.format, files=[prof.path],
            answer_kind="label" if steps[-1].state.type == "label" else "number", cells=cells,
            load_code=load_program(prof, file), seed=seed, verify_code=verify_program(prof, steps, file),
            ablations=ablations(prof, steps, file),
        ))
    return specs

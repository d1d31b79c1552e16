"""Column roles, messy files, well-posed answers, steps that matter and the output-folder lock, on
small files the tests write themselves."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from datamind_ext.interpreter import SessionProvider
from datamind_ext.synthesis.expert import ground_truths
from datamind_ext.synthesis.profile import (
    ProfileFailure,
    TableProfile,
    profile_file,
    read_table,
)
from datamind_ext.synthesis.programs import MEASURE_ROLES, make_task_specs


def _one(path: Path, **kw) -> TableProfile:
    (p,) = profile_file(path, **kw)
    assert isinstance(p, TableProfile), p
    return p


def _roles(p: TableProfile) -> dict[str, str]:
    return {c.name: c.role for c in p.columns}


def test_roles_of_index_id_year_dummy_code_and_measure(tmp_path: Path) -> None:
    n = 60
    df = pd.DataFrame({
        "village.id": range(101, 101 + n), "Year": [1990 + i % 12 for i in range(n)],
        "treated": [i % 2 for i in range(n)], "education": [1 + i % 5 for i in range(n)],
        "income": [1000.5 + 37.25 * i for i in range(n)], "children": [i % 4 for i in range(n)],
        "country": [["FR", "DE", "IT"][i % 3] for i in range(n)],
        "note": [f"visited on day {i} and wrote a long remark about it" for i in range(n)],
    })
    df.to_csv(tmp_path / "survey.csv")  # with the pandas row index as "Unnamed: 0"
    p = _one(tmp_path / "survey.csv")
    assert _roles(p) == {"Unnamed: 0": "identifier", "village.id": "identifier", "Year": "year", "treated": "binary",
                         "education": "ordinal", "income": "measure", "children": "count", "country": "category",
                         "note": "text"}
    assert all(c.role_reason for c in p.columns)
    # no statistic ever takes an identifier, year, dummy or code as a quantity
    specs = make_task_specs(p, 60, seed=0, min_depth=1, max_depth=4)
    used = {m for s in specs for link in s.chain for m in link["measures"]}
    measures = {c.name for c in p.columns if c.role in MEASURE_ROLES}
    assert used and all(m in measures or m.split("_per_")[0] in measures for m in used), used


def test_messy_csv_decimal_commas_thousands_and_non_iso_dates(tmp_path: Path) -> None:
    rows = ["city;temp;population;measured;sold_on"]
    for i in range(30):
        rows.append(f"C{i % 4};{i % 9},{i % 10};{1 + i}.{i:03d}.{(7 * i) % 1000:03d};{(i % 12) + 1}/{(i % 27) + 1}/2014;"
                    f"Sep {(i % 27) + 1}, 2017")
    (tmp_path / "eu.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    p = _one(tmp_path / "eu.csv")
    cols = {c.name: c for c in p.columns}
    assert cols["temp"].role == "measure" and cols["population"].role in MEASURE_ROLES
    assert p.read["numbers"] == {"temp": [",", None], "population": [",", "."]}
    assert cols["measured"].role == "date" and cols["measured"].date_format == "%m/%d/%Y" and cols["measured"].parse_rate == 1
    assert cols["sold_on"].role == "date" and cols["sold_on"].date_format == "%b %d, %Y"
    df = read_table(p)
    assert df["temp"].iloc[1] == 1.1 and df["population"].iloc[0] == 1_000_000
    assert any("decimal commas" in n for n in p.notes) and len(p.notes) == len(set(p.notes))
    # time operations parse the non-ISO dates with the found format
    specs = make_task_specs(p, 40, seed=1, min_depth=1, max_depth=3)
    assert any("format='%m/%d/%Y'" in s.verify_code or "format='%b %d, %Y'" in s.verify_code for s in specs)


def test_xlsx_title_rows_and_two_row_merged_header(tmp_path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "report"
    ws.append(["Quarterly sales report 2023"])
    ws.append(["(figures in EUR)"])
    ws.append(["Store", "Sales", None, "Staff"])
    ws.append([None, "Q1", "Q2", None])
    ws.merge_cells("B3:C3")
    for i in range(12):
        ws.append([f"S{i % 3}", 100.0 + i, 200.5 + 2 * i, 3 + i % 4])
    wb.save(tmp_path / "report.xlsx")
    p = _one(tmp_path / "report.xlsx")
    assert [c.name for c in p.columns] == ["Store", "Sales Q1", "Sales Q2", "Staff"]
    assert p.n_rows == 12 and p.rows_sampled == 12
    assert any("title" in n for n in p.notes) and any("two-row header" in n for n in p.notes)
    df = read_table(p)
    assert list(df.columns) == ["Store", "Sales Q1", "Sales Q2", "Staff"] and len(df) == 12
    assert df["Sales Q1"].dtype.kind in "if" and df["Sales Q2"].dtype.kind == "f"


def test_binary_and_prose_files_are_not_text_tables(tmp_path: Path) -> None:
    (tmp_path / "image.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    (tmp_path / "notes.csv").write_text("This is a letter to the team about the next release\n" * 5
                                        + "We will meet on Monday to discuss the plan in detail\n" * 5)
    for name in ("image.csv", "notes.csv"):
        (f,) = profile_file(tmp_path / name)
        assert isinstance(f, ProfileFailure) and f.reason.startswith("not a text table"), f


@pytest.fixture(scope="module")
def pool_run():
    loop = asyncio.new_event_loop()
    ex = SessionProvider(close_in_background=True)
    yield lambda coro_fn: loop.run_until_complete(coro_fn(ex))
    loop.run_until_complete(ex.aclose())
    loop.close()


def test_ill_posed_candidates_are_rejected_by_rule(tmp_path: Path, pool_run) -> None:
    """Ties, tiny selections, zero answers and steps without effect are rejected with their rule;
    what is kept has every table-to-table step change the answer."""
    n = 40
    pd.DataFrame({
        "shop": [["A", "B", "C", "D"][i % 4] for i in range(n)],  # four equal-size groups: counts tie
        "kind": ["x"] * (n - 2) + ["y", "y"],  # 'y' selects 2 rows
        "price": [10.0 + (i * 7) % 13 for i in range(n)], "qty": [1 + (i * 5) % 9 for i in range(n)],
        "wt": [5.0 + (i * 3) % 11 for i in range(n)],
    }).to_csv(tmp_path / "shops.csv", index=False)
    p = _one(tmp_path / "shops.csv")
    specs = make_task_specs(p, 80, seed=0, min_depth=1, max_depth=3)
    results = pool_run(lambda ex: ground_truths(specs, ex))
    reasons = Counter((why or "ok").split(":")[0] + ":" + (why or "ok:").split(":")[1] if why else "ok" for _, why in results)
    assert reasons["ok"] >= 10, (reasons, results[:3])
    assert reasons["ill_posed:tie"] >= 1 and reasons["ill_posed:tiny_selection"] >= 1, reasons
    for spec, (gold, why) in zip(specs, results, strict=True):
        if why and why.startswith("step_without_effect"):
            assert spec.ablations
        if gold is not None:
            assert gold.lower() not in ("nan", "0", "0.0", "inf")
            if [c["op"] for c in spec.chain] == ["value_counts", "top_label"] and "each shop" in spec.question:
                raise AssertionError(f"a tied count ranking was kept: {spec.question}")


def test_second_run_on_the_same_out_fails_at_once(tmp_path: Path) -> None:
    from datamind_ext.errors import UserError
    from datamind_ext.synthesis.lock import out_lock

    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", ("import sys, time\nfrom datamind_ext.synthesis.lock import out_lock\n"
                               f"with out_lock({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(60)")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=rf"in use by process {holder.pid} \("), out_lock(out):
            pass
    finally:
        holder.kill()
        holder.wait()
    for _ in range(50):  # the kernel drops a killed holder's lock
        try:
            with out_lock(out):
                break
        except UserError:
            time.sleep(0.1)
    else:
        raise AssertionError("lock not released after kill")


def test_audit_flags_misused_measures_and_bad_golds_and_filter_drops_them(tmp_path: Path) -> None:
    """The audit's checks on a hand-made set (one good task, one averaging an id, one NaN gold, one
    LLM task whose code sums a year), then the same checks as ``synth filter`` drops."""
    from datamind_ext.synthesis.audit import (
        audit_tasks,
        question_template,
        task_problems,
    )
    from datamind_ext.synthesis.profile import ColumnProfile
    from datamind_ext.synthesis.programs import Cell, TaskSpec
    from datamind_ext.synthesis.records import TaskRecord

    roles = {"t": {"id": "identifier", "price": "measure", "year": "year", "shop": "category"}}
    columns = [ColumnProfile(name=k, kind="numeric", dtype="float64", missing=0, n_unique=5, role=v) for k, v in roles["t"].items()]
    profiles = [TableProfile(key="t", path="t.csv", format="csv", n_rows=5, rows_sampled=5, n_cols=4, columns=columns,
                             sample_rows=[], file_bytes=100)]

    def task(q: str, gold: str, measures: list[str], source: str = "programmatic", code: str = "") -> TaskRecord:
        spec = TaskSpec(key=q, question=q, table_key="t", table_label="t.csv", category="aggregation", depth=1,
                        difficulty="easy", file_format="csv", files=["t.csv"], seed=0, source=source,
                        chain=[{"op": "mean", "measures": measures}] if source == "programmatic" else [],
                        cells=[Cell(think="", code=code)], verify_code="x", answer_kind="number")
        return TaskRecord(key=q, status="ok", gold=gold, spec=spec)

    tasks = [task("In t.csv: what is the mean price?", "3.5", ["price"]),
             task("In t.csv: what is the mean id?", "7.5", ["id"]),
             task("In t.csv: what is the mean price of shop 'A'?", "nan", ["price"]),
             task("What is the total year?", "40000", [], "llm", "x = df['year'].sum()\nprint(x)"),
             TaskRecord(key="r", status="rejected", reason="ill_posed:tie")]
    rep = audit_tasks(tasks, profiles)
    assert rep["checks"]["measure_misuse"]["count"] == 2 and rep["checks"]["nan_answer"]["count"] == 1
    assert rep["rejected_by_rule"] == {"ill_posed:tie": 1} and rep["tasks"] == 4
    assert question_template("In t.csv: what is the mean price above 3.5 for 'A'?", ["price"], "t.csv") == \
        "In <file>: what is the mean <col> above <num> for <val>?"
    assert task_problems(tasks[0].task, "0.001", roles["t"]) == ["zero_answer"]


def test_synth_audit_cli_writes_markdown_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import shutil

    from datamind_ext.cli.main import main

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "data" / "samples" / "files" / "retail_sales.csv", data)
    out = tmp_path / "out"
    for stage in ("profile", "tasks"):
        assert main(["synth", stage, "--data", str(data), "--out", str(out), "--tasks-per-table", "8"]) == 0
    assert main(["synth", "audit", str(out)]) == 0
    assert "synth audit:" in capsys.readouterr().out
    rep = json.loads((out / "audit.json").read_text())
    assert rep["tasks"] >= 3 and rep["checks"]["measure_misuse"]["count"] == 0
    assert "## Question templates" in (out / "audit.md").read_text()
    assert main(["synth", "audit", str(tmp_path / "nothing")]) == 2


def test_foreign_key_joins_and_stacked_sheets_become_tables(tmp_path: Path) -> None:
    """The profile stage adds sqlite joins along foreign keys and stacked same-layout sheets; their
    load code rebuilds them, and tasks use the joined-in columns."""
    import shutil

    from datamind_ext.synthesis.combine import combined_profiles
    from datamind_ext.synthesis.profile import find_data_files

    samples = Path(__file__).resolve().parents[1] / "data" / "samples" / "files"
    for name in ("library.sqlite", "school_grades.xlsx"):
        shutil.copy(samples / name, tmp_path)
    made = {}
    for f in find_data_files(tmp_path):
        tables = [p for p in profile_file(f) if isinstance(p, TableProfile)]
        for c in combined_profiles(f, tables):
            made[c.label] = c
            df = read_table(c, f)
            assert list(df.columns) == [x.name for x in c.columns] and len(df) == c.n_rows
    books = made["library.sqlite (books joined to authors on author_id)"]
    assert "JOIN \"authors\"" in books.read["sql"] and {"name", "country"} <= {c.name for c in books.columns}
    stacked = made["school_grades.xlsx (sheets term1, term2 stacked, sheet name in column 'sheet')"]
    assert stacked.n_rows == 480 and stacked.column("sheet").role in ("binary", "category")
    specs = make_task_specs(books, 40, seed=0, min_depth=1, max_depth=3)
    assert any("'country'" in s.verify_code for s in specs)
    assert all(s.table_label == books.label and "read_sql_query" in s.load_code for s in specs)


def test_ratios_only_between_columns_that_make_a_rate() -> None:
    from datamind_ext.synthesis.programs import sensible_ratio

    assert sensible_ratio("revenue", "units") and sensible_ratio("deaths", "population")
    assert sensible_ratio("Min.Price", "Max.Price") and sensible_ratio("re78", "re74")
    assert not sensible_ratio("yrs.service", "salary") and not sensible_ratio("longitude", "latitude")
    assert not sensible_ratio("lwage", "exp")

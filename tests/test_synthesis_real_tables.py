"""Synthesis on real public tables that ship inside an installed package (scikit-learn's bundled
datasets: wine, iris, diabetes, linnerud), written as csv, xlsx, sqlite and tsv: every file is read,
roles come out as an analyst would name them, and the kept tasks pass the audit."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from datamind_ext.cli.main import main

datasets = pytest.importorskip("sklearn.datasets")


def _write_real_tables(folder: Path) -> None:
    folder.mkdir()
    datasets.load_wine(as_frame=True).frame.to_csv(folder / "wine.csv", index=False)
    iris = datasets.load_iris(as_frame=True)
    frame = iris.frame.copy()
    frame["species"] = [iris.target_names[i] for i in frame.pop("target")]
    frame.to_excel(folder / "iris.xlsx", index=False)
    with sqlite3.connect(folder / "diabetes.sqlite") as con:
        datasets.load_diabetes(as_frame=True, scaled=False).frame.to_sql("patients", con, index=False)
    # Written with pandas' default index: the unnamed row-index column real exports carry.
    datasets.load_linnerud(as_frame=True).frame.to_csv(folder / "linnerud.tsv", sep="\t")


def test_real_tables_profile_roles_and_audit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    _write_real_tables(data)
    for stage in ("profile", "tasks"):
        assert main(["synth", stage, "--data", str(data), "--out", str(out), "--tasks-per-table", "30"]) == 0
    roles = {}
    for line in (out / "profiles.jsonl").read_text().splitlines():
        for p in json.loads(line).get("profiles", []):
            roles.update({(Path(p["path"]).name, c["name"]): c["role"] for c in p["columns"]})
    assert roles["linnerud.tsv", "Unnamed: 0"] == "identifier"  # the row index is never a measure
    assert roles["iris.xlsx", "species"] == "category" and roles["diabetes.sqlite", "sex"] == "binary"
    assert roles["wine.csv", "target"] == "category"  # cultivar classes written 0, 1, 2
    assert roles["diabetes.sqlite", "target"] in ("measure", "count")  # disease progression, 214 values
    assert roles["wine.csv", "alcohol"] == "measure" and roles["iris.xlsx", "sepal length (cm)"] == "measure"
    assert main(["synth", "audit", str(out)]) == 0
    capsys.readouterr()
    rep = json.loads((out / "audit.json").read_text())
    assert rep["tasks"] >= 30
    for check in ("measure_misuse", "nan_answer", "zero_answer", "unverified_steps"):
        assert rep["checks"][check]["count"] == 0, (check, rep["checks"][check])
    labels = {json.loads(t)["spec"]["table_label"].split(" ")[0] for t in (out / "tasks.jsonl").read_text().splitlines()
              if json.loads(t).get("status") == "ok"}
    assert {"wine.csv", "iris.xlsx", "diabetes.sqlite", "linnerud.tsv"} <= labels

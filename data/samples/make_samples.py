"""Generate the sample data files under data/samples/files deterministically.

Why it exists: the synthesis pipeline must run offline end to end on files the project owns,
covering every supported format (csv, tsv, xlsx with several sheets, json, jsonl, parquet,
sqlite) and the messiness of real files: non-UTF-8 encodings, semicolon delimiters, quoted
newlines, malformed lines, missing values, a wide table and one unreadable file. Every value
comes from ``numpy.random.default_rng(SEED)`` so a rerun gives the same contents
(byte for byte, except the xlsx whose zip entries carry the write time).

Run: ``.venv/bin/python data/samples/make_samples.py`` (writes data/samples/files/).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20260101
OUT = Path(__file__).resolve().parent / "files"

REGIONS = ["North", "South", "East", "West"]
PRODUCTS = ["Laptop", "Phone", "Tablet", "Monitor", "Headset", "Camera"]
DEPARTMENTS = ["Sales", "Engineering", "Finance", "Support", "Marketing"]
CITIES_ACCENTED = ["München", "Zürich", "Kraków", "São Paulo", "Reykjavík", "Malmö"]
GENRES = ["Fantasy", "History", "Science", "Poetry", "Mystery"]
SUBJECTS = ["Math", "Physics", "Chemistry", "Biology"]
ISSUE_TYPES = ["billing", "login", "shipping", "refund", "bug"]


def _holes(rng: np.random.Generator, values: np.ndarray, rate: float) -> list:
    """Replace a fraction of values with None (missing values, as real exports have)."""
    out = list(values)
    for i in np.flatnonzero(rng.random(len(out)) < rate):
        out[int(i)] = None
    return out


def retail_sales(rng: np.random.Generator) -> None:
    """Plain UTF-8 comma csv with dates and a few missing values."""
    n = 240
    start = dt.date(2023, 1, 1)
    dates = [start + dt.timedelta(days=int(d)) for d in np.sort(rng.integers(0, 730, n))]
    df = pd.DataFrame(
        {
            "order_id": np.arange(1001, 1001 + n),
            "order_date": [d.isoformat() for d in dates],
            "region": rng.choice(REGIONS, n),
            "product": rng.choice(PRODUCTS, n),
            "units": rng.integers(1, 20, n),
            "unit_price": np.round(rng.uniform(20, 900, n), 2),
            "discount": _holes(rng, np.round(rng.choice([0, 0.05, 0.1, 0.15], n), 2), 0.08),
        }
    )
    df["revenue"] = np.round(df["units"] * df["unit_price"] * (1 - df["discount"].fillna(0)), 2)
    df.to_csv(OUT / "retail_sales.csv", index=False)


def employees_tsv(rng: np.random.Generator) -> None:
    """Tab-separated HR table with missing salaries and ages."""
    n = 150
    df = pd.DataFrame(
        {
            "employee_id": [f"E{i:04d}" for i in range(n)],
            "department": rng.choice(DEPARTMENTS, n),
            "age": _holes(rng, rng.integers(21, 64, n), 0.05),
            "years_experience": rng.integers(0, 30, n),
            "salary": _holes(rng, np.round(rng.normal(62000, 15000, n), -2), 0.07),
            "performance_score": np.round(rng.uniform(1, 5, n), 1),
            "remote": rng.choice(["yes", "no"], n),
        }
    )
    df.to_csv(OUT / "employees.tsv", sep="\t", index=False)


def weather_latin1(rng: np.random.Generator) -> None:
    """Semicolon-delimited, Latin-1 encoded station readings (European export style)."""
    rows = []
    for city in CITIES_ACCENTED[:4]:
        base = rng.uniform(-2, 18)
        for month in range(1, 13):
            rows.append(
                {
                    "station": city,
                    "month": month,
                    "avg_temp_c": round(float(base + 8 * np.sin((month - 4) / 12 * 2 * np.pi) + rng.normal(0, 1)), 1),
                    "rainfall_mm": round(float(rng.gamma(2.0, 30.0)), 1),
                    "sunny_days": int(rng.integers(2, 26)),
                }
            )
    df = pd.DataFrame(rows)
    df.loc[rng.choice(len(df), 3, replace=False), "rainfall_mm"] = np.nan
    df.to_csv(OUT / "weather_stations.csv", sep=";", index=False, encoding="latin-1")


def support_tickets(rng: np.random.Generator) -> None:
    """Csv with quoted multi-line comments and two malformed lines (too many fields)."""
    n = 120
    path = OUT / "support_tickets.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_MINIMAL)
        w.writerow(["ticket_id", "opened", "issue_type", "priority", "resolution_hours", "satisfaction", "comment"])
        for i in range(n):
            opened = dt.datetime(2024, 1, 1) + dt.timedelta(hours=int(rng.integers(0, 24 * 300)))
            comment = rng.choice(
                ["Resolved quickly", 'Customer said "thanks"', "Escalated,\nthen fixed", "Waiting on vendor\nfollow-up", ""]
            )
            sat = "" if rng.random() < 0.1 else int(rng.integers(1, 6))
            w.writerow(
                [i + 1, opened.isoformat(sep=" "), rng.choice(ISSUE_TYPES), rng.choice(["low", "medium", "high"]),
                 round(float(rng.exponential(20.0)), 1), sat, comment]
            )
            if i in (30, 77):  # a broken export line: extra separators
                f.write(f"{1000 + i},2024-05-01 10:00:00,bug,high,3.5,4,oops,extra,fields\n")


def school_grades_xlsx(rng: np.random.Generator) -> None:
    """Workbook with one sheet per term plus a students sheet."""
    students = pd.DataFrame(
        {
            "student_id": [f"S{i:03d}" for i in range(60)],
            "class_group": rng.choice(["A", "B", "C"], 60),
            "gender": rng.choice(["F", "M"], 60),
        }
    )
    with pd.ExcelWriter(OUT / "school_grades.xlsx", engine="openpyxl") as xw:
        students.to_excel(xw, sheet_name="students", index=False)
        for term in ("term1", "term2"):
            rows = [
                {"student_id": s, "subject": subj, "score": int(np.clip(rng.normal(70, 12), 0, 100)),
                 "absences": int(rng.poisson(2))}
                for s in students["student_id"]
                for subj in SUBJECTS
            ]
            df = pd.DataFrame(rows)
            df.loc[rng.choice(len(df), 6, replace=False), "score"] = np.nan
            df.to_excel(xw, sheet_name=term, index=False)
        xw.book.properties.created = dt.datetime(2026, 1, 1)
        xw.book.properties.modified = dt.datetime(2026, 1, 1)


def products_json(rng: np.random.Generator) -> None:
    """JSON array of records with a nested field (flattened by the profiler) and nulls."""
    items = []
    for i in range(80):
        items.append(
            {
                "sku": f"P-{i:03d}",
                "category": str(rng.choice(["kitchen", "garden", "toys", "books"])),
                "price": round(float(rng.uniform(3, 250)), 2),
                "stock": int(rng.integers(0, 500)),
                "rating": None if rng.random() < 0.1 else round(float(rng.uniform(1, 5)), 1),
                "supplier": {"name": str(rng.choice(["Acme", "Globex", "Initech"])), "country": str(rng.choice(["DE", "US", "JP"]))},
            }
        )
    (OUT / "products.json").write_text(json.dumps(items, indent=1), encoding="utf-8")


def web_events_jsonl(rng: np.random.Generator) -> None:
    """JSON-lines event log with one corrupt line."""
    lines = []
    t0 = dt.datetime(2025, 3, 1)
    for i in range(200):
        lines.append(
            json.dumps(
                {
                    "event_id": i,
                    "ts": (t0 + dt.timedelta(minutes=int(rng.integers(0, 60 * 24 * 20)))).isoformat(),
                    "page": str(rng.choice(["home", "search", "product", "cart", "checkout"])),
                    "device": str(rng.choice(["mobile", "desktop", "tablet"])),
                    "duration_s": round(float(rng.lognormal(3, 0.8)), 1),
                    "converted": bool(rng.random() < 0.12),
                }
            )
        )
    lines.insert(57, '{"event_id": 999, "ts": "2025-03-02T')  # truncated write
    (OUT / "web_events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def energy_parquet(rng: np.random.Generator) -> None:
    """Parquet with a timestamp column (hourly meter readings)."""
    n = 24 * 21
    ts = pd.date_range("2025-01-01", periods=n, freq="h")
    hours = ts.hour.to_numpy()
    df = pd.DataFrame(
        {
            "timestamp": ts,
            "building": rng.choice(["HQ", "Lab", "Depot"], n),
            "kwh": np.round(20 + 15 * np.sin((hours - 6) / 24 * 2 * np.pi) + rng.normal(0, 3, n), 2),
            "outdoor_temp_c": np.round(2 + 6 * np.sin((hours - 9) / 24 * 2 * np.pi) + rng.normal(0, 1, n), 1),
        }
    )
    df.to_parquet(OUT / "energy_readings.parquet", index=False)


def sensors_wide(rng: np.random.Generator) -> None:
    """A wide table: 64 sensor columns, 40 rows."""
    cols = {f"sensor_{i:02d}": np.round(rng.normal(50, 10, 40), 2) for i in range(64)}
    df = pd.DataFrame({"batch": [f"B{i:02d}" for i in range(40)], "line": rng.choice(["L1", "L2"], 40), **cols})
    df.to_csv(OUT / "sensor_matrix.csv", index=False)


def library_sqlite(rng: np.random.Generator) -> None:
    """Relational database with primary and foreign keys, built with sqlite-utils."""
    import sqlite_utils

    path = OUT / "library.sqlite"
    path.unlink(missing_ok=True)
    db = sqlite_utils.Database(path)
    authors = [{"author_id": i, "name": f"Author {chr(65 + i)}", "country": str(rng.choice(["UK", "US", "FR", "IN"]))} for i in range(12)]
    db["authors"].insert_all(authors, pk="author_id")
    books = [
        {"book_id": i, "title": f"Book {i}", "author_id": int(rng.integers(0, 12)), "genre": str(rng.choice(GENRES)),
         "year": int(rng.integers(1950, 2024)), "pages": int(rng.integers(90, 900))}
        for i in range(90)
    ]
    db["books"].insert_all(books, pk="book_id", foreign_keys=[("author_id", "authors", "author_id")])
    members = [{"member_id": i, "joined": f"20{int(rng.integers(15, 25))}-0{int(rng.integers(1, 10))}-15",
                "plan": str(rng.choice(["basic", "premium"]))} for i in range(50)]
    db["members"].insert_all(members, pk="member_id")
    start = dt.date(2024, 1, 1)
    loans = []
    for i in range(300):
        out_day = start + dt.timedelta(days=int(rng.integers(0, 365)))
        loans.append(
            {"loan_id": i, "book_id": int(rng.integers(0, 90)), "member_id": int(rng.integers(0, 50)),
             "loaned_on": out_day.isoformat(), "days_kept": None if rng.random() < 0.06 else int(rng.integers(1, 40))}
        )
    db["loans"].insert_all(
        loans, pk="loan_id",
        foreign_keys=[("book_id", "books", "book_id"), ("member_id", "members", "member_id")],
    )
    db.conn.commit()
    db.conn.execute("VACUUM")
    db.conn.close()


def broken_file() -> None:
    """An xlsx that is not a zip archive: the profiler must report it and move on."""
    (OUT / "corrupt_export.xlsx").write_bytes(b"This is not really an Excel workbook.\n" * 4)


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    rng = np.random.default_rng(SEED)
    for make in (retail_sales, employees_tsv, weather_latin1, support_tickets, school_grades_xlsx, products_json,
                 web_events_jsonl, energy_parquet, sensors_wide, library_sqlite):
        make(rng)
    broken_file()
    for p in sorted(OUT.iterdir()):
        print(f"{p.stat().st_size:>8}  {p.name}")


if __name__ == "__main__":
    main()

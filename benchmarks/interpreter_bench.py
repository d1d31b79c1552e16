"""Benchmark of datamind_ext.interpreter against the reference's execution model.

    .venv/bin/python benchmarks/interpreter_bench.py            # full run (several minutes on 2 cores)
    .venv/bin/python benchmarks/interpreter_bench.py --quick    # smaller counts, same figures

Workload: a 20,000-row sales CSV and five pandas/scipy/sklearn cells of the kind an analyst
writes. Figures, each printed next to its target and, where one exists, the baseline:
  1. session start latency p50/p99 (open_session: fork from the warm zygote, sandbox, ready);
  2. per-cell overhead over running the same cell in this process (the physical floor), p50/p99;
  3. unique memory (USS) per idle session after the five cells, and the total for N sessions;
  4. wall time of 64 trajectories x 5 cells at concurrency 64, against the reference's model
     (a fresh interpreter per turn re-running every earlier cell, prints replaced by `pass`),
     measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datamind_ext.interpreter import InterpreterPool, Limits  # noqa: E402
from datamind_ext.interpreter.isolation import layers as layer_summary  # noqa: E402

CELLS = [
    "import pandas as pd\ndf = pd.read_csv('sales.csv')\nprint(df.shape)\nprint(df.head(3))\nprint(df.dtypes)",
    "df['revenue'] = df['units'] * df['price'] * (1 - df['discount'])\n"
    "by_region = df.groupby('region')['revenue'].agg(['sum', 'mean', 'count']).sort_values('sum', ascending=False)\n"
    "print(by_region.round(2))",
    "df['date'] = pd.to_datetime(df['date'])\nmonthly = df.set_index('date').resample('MS')['revenue'].sum()\n"
    "top = df.groupby(['region', 'product'])['units'].sum().nlargest(5)\nprint(monthly.tail(3).round(2))\nprint(top)",
    "from scipy import stats\nr, p = stats.pearsonr(df['units'], df['revenue'])\n"
    "print(f'pearson r={r:.3f} p={p:.2e}')\nprint(df[['units', 'price', 'discount', 'revenue']].describe().round(2))",
    "from sklearn.linear_model import LinearRegression\nX = df[['units', 'price', 'discount']]\n"
    "model = LinearRegression().fit(X, df['revenue'])\nprint(model.coef_.round(3), round(model.score(X, df['revenue']), 4))",
]


def make_csv(folder: Path, rows: int = 20_000) -> Path:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "date": pd.date_range("2023-01-01", periods=rows, freq="37min").strftime("%Y-%m-%d %H:%M"),
            "region": rng.choice(["north", "south", "east", "west", "central"], rows),
            "product": rng.choice([f"p{i:02d}" for i in range(40)], rows),
            "customer_id": rng.integers(1, 5000, rows),
            "units": rng.integers(1, 20, rows),
            "price": rng.uniform(1, 200, rows).round(2),
            "discount": rng.choice([0.0, 0.05, 0.1, 0.2], rows),
        }
    )
    path = folder / "sales.csv"
    df.to_csv(path, index=False)
    return path


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def ms(x: float) -> str:
    return f"{x * 1000:8.2f} ms"


def run_in_process(codes: list[str], data_dir: Path) -> list[float]:
    """The floor: the same cells exec'd in this process, output captured in memory."""
    g: dict = {"__name__": "__main__"}
    times = []
    cwd = os.getcwd()
    os.chdir(data_dir)
    try:
        for code in codes:
            buf = io.StringIO()
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                exec(compile(code, "<cell>", "exec"), g)
            times.append(time.perf_counter() - t0)
    finally:
        os.chdir(cwd)
    return times


async def bench_start(pool: InterpreterPool, csv: Path, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        s = await pool.open_session(files=[csv])
        out.append(time.perf_counter() - t0)
        await s.close()
    return out


#: The quickstart's warm image (recipes/quickstart: interpreter.preload): what its cells use.
PANDAS_ONLY = ["numpy", "pandas", "openpyxl", "pyarrow.parquet", "sqlite3", "json", "csv"]


async def bench_churn(pool: InterpreterPool, csv: Path, n: int, concurrency: int) -> float:
    """Seconds per session when sessions are opened, run one cell and closed back to back, as
    synthesis does (one session per trajectory): the fork and the teardown of the warm image
    are what this measures, and both grow with the image's size."""
    sem = asyncio.Semaphore(concurrency)
    code = f"import pandas as pd\nprint(pd.read_csv('{csv.name}').shape)"

    async def one() -> None:
        async with sem, pool.session(files=[csv]) as s:
            assert (await s.run(code)).ok

    await asyncio.gather(*(one() for _ in range(concurrency * 2)))  # spares and caches warm
    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return (time.perf_counter() - t0) / n


async def bench_overhead(
    pool: InterpreterPool, csv: Path, reps: int
) -> tuple[list[float], list[float], list[float], list[float]]:
    overheads, noop, cell_floor, transport = [], [], [], []
    for _ in range(reps):
        floor = run_in_process(CELLS, csv.parent)
        async with pool.session(files=[csv]) as s:
            for code, f in zip(CELLS, floor):
                r = await s.run(code)
                assert r.ok, r.error
                overheads.append(r.duration_s - f)
                transport.append(r.duration_s - r.cell_s)
                cell_floor.append(f)
            for _ in range(5):
                t0 = time.perf_counter()
                await s.run("pass")
                noop.append(time.perf_counter() - t0)
    return overheads, noop, cell_floor, transport


async def bench_memory(pool: InterpreterPool, csv: Path, n: int) -> tuple[list[int], int, float, list[int]]:
    sessions = [await pool.open_session(files=[csv]) for _ in range(n)]
    t0 = time.perf_counter()

    async def work(s):
        for code in CELLS:
            r = await s.run(code)
            assert r.ok, r.error

    await asyncio.gather(*(work(s) for s in sessions))
    wall = time.perf_counter() - t0
    await asyncio.sleep(0.5)
    report = await pool.memory_report()
    per = sorted(report.sessions_uss_bytes.values())
    charged = sorted(report.sessions_charged_bytes.values())  # memory cgroup: what the limit applies to
    for s in sessions:
        await s.close()
    return per, report.total_uss_bytes, wall, charged


async def bench_trajectories(pool: InterpreterPool, csv: Path, n: int) -> float:
    async def one():
        async with pool.session(files=[csv]) as s:
            for code in CELLS:
                r = await s.run(code)
                assert r.ok, r.error

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - t0


def reference_program(turn: int) -> str:
    """What the reference executes at turn ``turn``: earlier cells with print lines replaced by
    `pass` (its 'chunked code maintenance'), then the new cell, in a fresh interpreter."""
    earlier = []
    for code in CELLS[:turn]:
        earlier += ["pass" if "print(" in line else line for line in code.splitlines()]
    return "\n".join(earlier + CELLS[turn].splitlines())


async def bench_reference(csv: Path, n: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)
    workdirs = []
    for i in range(n):
        d = Path(tempfile.mkdtemp(prefix="ref-traj-"))
        os.link(csv, d / "sales.csv") if csv.stat().st_dev == d.stat().st_dev else d.joinpath("sales.csv").write_bytes(csv.read_bytes())
        workdirs.append(d)

    async def run_turn(d: Path, turn: int) -> None:
        async with sem:
            script = d / f"turn{turn}.py"
            script.write_text(reference_program(turn))
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(script), cwd=d, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            out, err = await proc.communicate()
            assert proc.returncode == 0, err.decode()[-500:]

    async def one(d: Path) -> None:
        for turn in range(len(CELLS)):
            await run_turn(d, turn)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(d) for d in workdirs))
    wall = time.perf_counter() - t0
    for d in workdirs:
        for f in d.iterdir():
            f.unlink()
        d.rmdir()
    return wall


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and sessions (figures are noisier)")
    ap.add_argument("--sessions", type=int, default=None, help="concurrent sessions for the memory figure (default 256)")
    ap.add_argument("--trajectories", type=int, default=64, help="trajectories for the throughput figure, ours and the baseline")
    args = ap.parse_args()
    n_start = 30 if args.quick else 100
    reps = 4 if args.quick else 12
    n_mem = args.sessions or (32 if args.quick else 256)
    n_traj = args.trajectories
    n_churn = 60 if args.quick else 300
    cores = os.cpu_count() or 1

    with tempfile.TemporaryDirectory(prefix="interp-bench-") as tmp:
        csv = make_csv(Path(tmp))
        t0 = time.perf_counter()
        async with InterpreterPool(limits=Limits(), max_sessions=max(n_mem, n_traj)) as pool:
            zygote_s = time.perf_counter() - t0
            start = await bench_start(pool, csv, n_start)
            overheads, noop, floor, transport = await bench_overhead(pool, csv, reps)
            per, total, mem_wall, charged = await bench_memory(pool, csv, n_mem)
            ours = await bench_trajectories(pool, csv, n_traj)
            churn_full = await bench_churn(pool, csv, n_churn, cores)
            isolation = pool.isolation
            async with pool.session() as probe:
                layers = {**isolation, **probe.isolation}
        async with InterpreterPool(limits=Limits(), max_sessions=2 * cores, preload=PANDAS_ONLY) as small:
            churn_small = await bench_churn(small, csv, n_churn, cores)
        ref = await bench_reference(csv, n_traj, concurrency=64)

    mib = 1 << 20
    print(f"\ninterpreter benchmark: {cores} cores, python {sys.version.split()[0]}, 20,000-row CSV, 5 cells")
    print(f"network isolation: {isolation.get('network')}")
    for layer, state in layer_summary(layers).items():
        print(f"  {layer:<18} {state.split(':')[0]}")
    print(f"zygote start (one-off, imports pandas/numpy/scipy/sklearn/matplotlib/openpyxl/pyarrow): {zygote_s:.2f} s\n")
    print(f"{'figure':<52} {'datamind_ext':>14} {'reference model':>16} {'target':>12}")
    print(f"{'session start p50 (n=' + str(n_start) + ')':<52} {ms(pct(start, 50)):>14} {'(interpreter start-up per turn)':>16} {'<= 10 ms':>12}")
    print(f"{'session start p99':<52} {ms(pct(start, 99)):>14}")
    print(f"{'per-cell overhead over in-process p50 (n=' + str(len(overheads)) + ')':<52} {ms(pct(overheads, 50)):>14} {'':>16} {'<= 3 ms':>12}")
    print(f"{'per-cell overhead over in-process p99':<52} {ms(pct(overheads, 99)):>14}")
    print(f"{'  (in-process cell time p50, the floor)':<52} {ms(pct(floor, 50)):>14}")
    print(f"{'  (transport only: duration - time inside, p50 / p99)':<52} {ms(pct(transport, 50)):>14} {ms(pct(transport, 99)):>16}")
    print(f"{'  (empty cell round trip p50 / p99)':<52} {ms(pct(noop, 50)):>14} {ms(pct(noop, 99)):>16}")
    print(f"{'USS per idle session after 5 cells p50 (n=' + str(n_mem) + ')':<52} {statistics.median(per) / mib:11.1f} MiB {'':>16} {'<= 16 MiB':>12}")
    print(f"{'USS per idle session max':<52} {max(per) / mib:11.1f} MiB")
    if charged:
        print(f"{'  (memory cgroup charge per idle session p50)':<52} {statistics.median(charged) / mib:11.1f} MiB")
    print(f"{'USS total for ' + str(n_mem) + ' concurrent sessions':<52} {total / mib:11.1f} MiB")
    print(f"{f'  ({n_mem} sessions x 5 cells, wall)':<52} {mem_wall:12.2f} s")
    print(f"{f'{n_traj} trajectories x 5 cells, concurrency 64, wall':<52} {ours:12.2f} s {ref:14.2f} s {'>= 30x':>12}")
    print(f"{'speed-up over the reference model':<52} {ref / ours:12.1f} x")
    print(f"{f'session churn, open + 1 cell + close, concurrency {cores} (n={n_churn})':<52} "
          f"{ms(churn_small):>14} {ms(churn_full) + ' full image':>16} {'(pandas-only preload vs default)':>12}")


if __name__ == "__main__":
    asyncio.run(main())

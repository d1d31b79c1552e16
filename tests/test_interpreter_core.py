"""The interpreter's public API: persistence, files, errors, output limits, timeouts, SQL tools,
concurrency, the sync wrapper, cleanup. One warm pool per module (its start-up is the cost)."""

from __future__ import annotations

import asyncio
import sqlite3
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import pytest_asyncio

from datamind_ext.errors import UserError
from datamind_ext.interpreter import InterpreterPool, Limits
from datamind_ext.protocol import observation_text

pytestmark = pytest.mark.asyncio(loop_scope="module")

LIMITS = Limits(timeout_s=20, interrupt_grace_s=3, output_max_chars=400, sql_max_rows=50)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("data")
    df = pd.DataFrame({"region": ["north", "south", "north", "east"], "sales": [10.0, 20.5, 30.0, 5.0], "units": [1, 2, 3, 4]})
    df.to_csv(d / "sales.csv", index=False)
    df.to_csv(d / "sales.tsv", sep="\t", index=False)
    df.to_excel(d / "sales.xlsx", index=False)
    df.to_json(d / "sales.json", orient="records")
    df.to_parquet(d / "sales.parquet")
    with sqlite3.connect(d / "shop.sqlite") as conn:
        df.to_sql("orders", conn, index=False)
        pd.DataFrame({"id": range(200), "v": range(200)}).to_sql("big", conn, index=False)
    return d


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool():
    async with InterpreterPool(limits=LIMITS, max_sessions=16) as p:
        yield p
    assert p.processes() == [], "processes left after the pool closed"


async def test_state_persists_between_cells(pool):
    async with pool.session() as s:
        assert (await s.run("import numpy as np\nx = np.arange(5)\ndef f(v):\n    return v * 2")).ok
        r = await s.run("print(f(x).sum())")
        assert r.ok and r.output == "20\n" and r.error is None and not r.timed_out
        assert r.duration_s > 0


async def test_every_data_format_is_readable_by_relative_name(pool, data_dir):
    files = [data_dir / n for n in ("sales.csv", "sales.tsv", "sales.xlsx", "sales.json", "sales.parquet", "shop.sqlite")]
    async with pool.session(files=files) as s:
        code = textwrap.dedent(
            """
            import pandas as pd, sqlite3
            frames = [pd.read_csv('sales.csv'), pd.read_csv('sales.tsv', sep='\\t'), pd.read_excel('sales.xlsx'),
                      pd.read_json('sales.json'), pd.read_parquet('sales.parquet'),
                      pd.read_sql_query('select * from orders', sqlite3.connect('shop.sqlite'))]
            print([round(float(f['sales'].sum()), 1) for f in frames])
            """
        )
        r = await s.run(code)
        assert r.ok, r.error
        assert r.output.strip() == "[65.5, 65.5, 65.5, 65.5, 65.5, 65.5]"


async def test_sessions_have_their_own_directories_removed_on_close(pool, data_dir):
    async with pool.session(files=[data_dir / "sales.csv"]) as a, pool.session() as b:
        assert a.workdir != b.workdir
        assert (await a.run("open('mine.txt', 'w').write('a')")).ok
        r = await b.run(f"print(open({str(a.workdir / 'mine.txt')!r}).read())")
        assert not r.ok and "PermissionError" in r.error
        r = await b.run("import os\nprint(sorted(os.listdir('.')))")
        assert r.output.strip() == "[]"
        wa = a.workdir
    assert not wa.exists()


async def test_exception_and_syntax_error_observations(pool):
    async with pool.session() as s:
        r = await s.run("print('before')\n{}['missing']")
        assert not r.ok and r.output == "before\n"
        assert r.error.splitlines()[-1] == "KeyError: 'missing'" and "<cell-" in r.error
        text, _ = observation_text(r)
        assert text.startswith("The code failed:\nbefore\n") and "KeyError" in text
        r = await s.run("def broken(:\n    pass")
        assert not r.ok and "SyntaxError" in r.error
        assert (await s.run("print('still alive')")).output == "still alive\n"


async def test_output_keeps_head_and_tail_with_marker(pool):
    async with pool.session() as s:
        r = await s.run("print('HEAD' + 'x' * 100000 + 'TAIL')")
        assert r.ok and r.output.startswith("HEAD") and r.output.rstrip().endswith("TAIL")
        assert len(r.output) <= LIMITS.output_max_chars
        assert r.output_chars == 100009 and r.truncated_chars > 99000
        assert f"[{r.truncated_chars} characters cut]" in r.output
        # stdout and stderr in order, C-level writes included
        r = await s.run("import sys, os\nprint('a')\nprint('b', file=sys.stderr)\nsys.stdout.flush()\nos.write(1, b'c\\n')")
        assert r.output == "a\nb\nc\n"
        # each stream alone too (Python-level writes; fd-level ones are in output only)
        assert (r.stdout, r.stderr) == ("a\n", "b\n")
        r = await s.run("import sys, warnings\nsys.stderr.buffer.write(b'E' * 5000)\nprint('o')\nwarnings.warn('careful')")
        assert r.stdout == "o\n" and r.stderr.startswith("EEEE") and "UserWarning: careful" in r.stderr, r
        assert len(r.stderr) <= LIMITS.output_max_chars and "characters cut" in r.stderr
        assert r.output.startswith("EEEE") and "o\n" in r.output


async def test_timeout_interrupts_and_keeps_state(pool):
    async with pool.session() as s:
        assert (await s.run("kept = 7")).ok
        r = await s.run("import time\nprogress = 1\ntime.sleep(60)", timeout_s=0.5)
        assert r.timed_out and not r.ok and "wall-clock limit" in r.error and not r.restarted
        assert (await s.run("print(kept, progress)")).output == "7 1\n"
        text, _ = observation_text(r)
        assert text.startswith("The code timed out:")


async def test_timeout_that_ignores_interrupt_kills_and_replays(pool):
    async with pool.session() as s:
        assert (await s.run("kept = 'yes'")).ok
        r = await s.run("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass", timeout_s=0.5)
        assert r.timed_out and r.restarted and r.replayed_cells == 1 and "killed" in r.error
        assert (await s.run("print(kept)")).output == "yes\n"


async def test_crash_fresh_mode_forgets_state(data_dir):
    async with InterpreterPool(limits=Limits(on_crash="fresh"), max_sessions=2, preload=[]) as p:
        async with p.session() as s:
            assert (await s.run("kept = 1")).ok
            r = await s.run("import os\nos._exit(3)")
            assert not r.ok and "exited with code 3" in r.error and "fresh" in r.error
            r = await s.run("print(kept)")
            assert "NameError" in r.error
    assert p.processes() == []


async def test_sql_tools(pool, data_dir):
    async with pool.session(files=[data_dir / "shop.sqlite"]) as s:
        r = await s.run("info = get_db_info()")
        assert r.ok and "orders" in r.output and "CREATE TABLE" in r.output and "(4 rows)" in r.output
        r = await s.run("df = execute_sql(sql=\"SELECT region, SUM(sales) AS total FROM orders GROUP BY region ORDER BY region\", output_path='result.csv')")
        assert r.ok, r.error
        assert "3 rows" in r.output and "result.csv" in r.output
        got = pd.read_csv(s.path("result.csv"))
        assert got.to_dict("list") == {"region": ["east", "north", "south"], "total": [5.0, 40.0, 20.5]}
        r = await s.run("execute_sql('SELECT * FROM big')")
        assert r.ok and "cut at 50 rows" in r.output
        assert len(pd.read_csv(s.path("result.csv"))) == 50
        for bad in ("DELETE FROM orders", "SELECT 1; DROP TABLE orders", "WITH x AS (SELECT 1) DELETE FROM orders",
                    "ATTACH DATABASE 'x.db' AS x"):
            r = await s.run(f"execute_sql({bad!r})")
            assert not r.ok and "SqlToolError" in r.error, (bad, r.error)
        r = await s.run("execute_sql('SELECT 1', output_path='../escape.csv')")
        assert not r.ok and "inside the working directory" in r.error
    with sqlite3.connect(data_dir / "shop.sqlite") as conn:
        assert conn.execute("select count(*) from orders").fetchone()[0] == 4


async def test_event_loop_never_blocked_and_cells_run_concurrently(pool):
    """Two cells that can only finish if both run at once: each announces itself, then waits
    for a go-file the test writes only after seeing both announcements from its event loop."""
    code = (
        "import os, time\nopen('started', 'w').close()\n"
        "while not os.path.exists('go'):\n    time.sleep(0.01)\nprint('done')"
    )
    async with pool.session() as a, pool.session() as b:
        runs = asyncio.gather(a.run(code), b.run(code))
        polls = 0
        while not ((a.workdir / "started").exists() and (b.workdir / "started").exists()):
            assert not runs.done(), "a cell ended before both had started"
            polls += 1
            await asyncio.sleep(0.01)  # the loop keeps running while both cells execute
        for s in (a, b):
            (s.workdir / "go").touch()
        ra, rb = await runs
        assert ra.output == rb.output == "done\n" and not ra.timed_out and not rb.timed_out
        assert polls > 0


async def test_concurrency_cap_queues_cells(data_dir):
    async with InterpreterPool(limits=LIMITS, max_sessions=4, max_concurrency=1, preload=[]) as p:
        sessions = [await p.open_session() for _ in range(3)]
        code = "import time\nt0 = time.time()\ntime.sleep(0.2)\nprint(t0, time.time())"
        rs = await asyncio.gather(*(s.run(code) for s in sessions))
        spans = sorted(tuple(map(float, r.output.split())) for r in rs)
        for (s0, e0), (s1, _) in zip(spans, spans[1:]):
            assert s1 >= e0 - 0.01  # with one slot, cells never overlap
        for s in sessions:
            await s.close()
    assert p.processes() == []


async def test_max_sessions_applies_backpressure():
    async with InterpreterPool(limits=LIMITS, max_sessions=1, preload=[]) as p:
        first = await p.open_session()
        waiting = asyncio.create_task(p.open_session())
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await first.close()
        second = await asyncio.wait_for(waiting, 10)
        assert (await second.run("print(2)")).output == "2\n"
        await second.close()


async def test_missing_file_is_a_user_error(pool, tmp_path):
    with pytest.raises(UserError, match="not found"):
        await pool.open_session(files=[tmp_path / "nope.csv"])


async def test_exception_in_caller_closes_session(pool):
    with pytest.raises(RuntimeError, match="caller"):
        async with pool.session() as s:
            pid, workdir = s.pid, s.workdir
            raise RuntimeError("caller failed")
    assert not workdir.exists()
    assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"


async def test_memory_report_and_eviction_with_replay(data_dir):
    async with InterpreterPool(limits=LIMITS, max_sessions=4) as p:
        a = await p.open_session(files=[data_dir / "sales.csv"])
        b = await p.open_session()
        assert (await a.run("import pandas as pd\ndf = pd.read_csv('sales.csv')\nbig = list(range(200000))")).ok
        assert (await b.run("y = 5")).ok
        report = await p.memory_report()
        assert set(report.sessions_uss_bytes) == {a.id, b.id}
        assert report.sessions_uss_bytes[a.id] > 1 << 20 and report.total_uss_bytes == sum(report.sessions_uss_bytes.values())
        p.memory_budget_mib = 1
        evicted = await p.enforce_memory_budget()
        assert evicted == 2 and a.evicted and b.evicted and a.pid is None
        assert (await p.memory_report()).total_uss_bytes == 0
        r = await a.run("print(df['sales'].sum(), len(big))")  # rebuilt by replay
        assert r.ok and r.output == "65.5 200000\n"
        assert (await b.run("print(y)")).output == "5\n"
        for _ in range(100):  # with a budget set, cells trigger eviction in the background
            if a.evicted and b.evicted:
                break
            await asyncio.sleep(0.05)
        assert p.evictions >= 4 and (await p.memory_report()).evicted_sessions == 2
        await a.close()
        await b.close()
    assert p.processes() == []


async def test_cancelled_cell_does_not_desynchronise_the_session(pool):
    async with pool.session() as s:
        assert (await s.run("kept = 3")).ok
        task = asyncio.create_task(s.run("import time\ntime.sleep(2)\nprint('late')"))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        r = await s.run("print(kept)")
        assert r.ok and r.output == "3\n"  # rebuilt by replay, not the cancelled cell's late reply


async def test_preload_list_sets_the_warm_image_and_other_imports_still_work(pool, data_dir):
    """``preload`` is what sessions inherit: a pandas-only zygote neither imports nor warms up scipy,
    scikit-learn or matplotlib (a smaller image to fork), and a cell may still import them itself."""
    probe = "import sys\nprint(sorted(m for m in ('pandas', 'scipy', 'sklearn', 'matplotlib') if m in sys.modules))"
    async with pool.session() as s:  # the default list
        assert (await s.run(probe)).output == "['matplotlib', 'pandas', 'scipy', 'sklearn']\n"
    async with InterpreterPool(limits=LIMITS, max_sessions=1, preload=["pandas", "openpyxl"]) as p:
        async with p.session(files=[data_dir / "sales.xlsx"]) as s:
            assert (await s.run(probe)).output == "['pandas']\n"
            r = await s.run("import pandas as pd\nfrom scipy import stats\n"
                            "print(round(stats.pearsonr(pd.read_excel('sales.xlsx')['sales'], [1, 2, 3, 4])[0], 3))")
            assert r.ok and r.output == "-0.064\n", r.error
    assert p.processes() == []

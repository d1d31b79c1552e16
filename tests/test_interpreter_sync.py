"""The interpreter's synchronous wrapper and its cleanup when the parent is SIGKILLed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from datamind_ext.interpreter import Limits, SyncInterpreterPool
from datamind_ext.interpreter.procs import find_processes

LIMITS = Limits(timeout_s=20, interrupt_grace_s=3)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    pd.DataFrame({"sales": [1, 2, 3, 4]}).to_csv(tmp_path / "sales.csv", index=False)
    return tmp_path


def test_sync_wrapper(data_dir):
    with SyncInterpreterPool(limits=LIMITS, max_sessions=2, preload=["pandas"]) as sp:
        with sp.session(files=[data_dir / "sales.csv"]) as s:
            assert s.run("import pandas as pd\nn = len(pd.read_csv('sales.csv'))").ok
            assert s.run("print(n)").output == "4\n"
        # once the session is closed, only the zygote and the pre-forked spares are left
        deadline = time.monotonic() + 60  # a spare may be mid-fork; a loaded 2-core machine is slow
        while True:  # one snapshot decides: a spare forked after it would otherwise fail the check
            live, expected = set(sp.pool.processes()), {*sp.pool.service_pids, *sp.pool.spare_pids}
            if live == expected or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert live == expected
        pool = sp.pool
    assert pool.processes() == []


def test_sigkill_of_the_parent_leaves_no_process(tmp_path):
    script = textwrap.dedent(
        """
        import asyncio, json, sys
        from datamind_ext.interpreter import InterpreterPool, Limits
        async def main():
            pool = await InterpreterPool(preload=[], max_sessions=2).start()
            s = await pool.open_session()
            await s.run("import subprocess\\nsubprocess.Popen(['sleep', '60'])\\nimport time")
            print(json.dumps({"uids": [pool.uid_range.start, pool.uid_range.stop], "pgids": sorted(pool._all_pgids),
                              "zygote": pool.zygote_pid}), flush=True)
            await asyncio.sleep(120)
        asyncio.run(main())
        """
    )
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=repo, text=True)
    info = json.loads(proc.stdout.readline())
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while True:
        left = find_processes(uids=range(*info["uids"]), pgids=info["pgids"], roots=[info["zygote"]])
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert left == []


def test_isolation_report_describes_what_is_in_force():
    from datamind_ext.interpreter import isolation_report

    report = isolation_report()
    assert "error" not in report and "probe" not in report, report
    for key in ("network", "user", "environment", "memory", "processes", "cleanup"):
        assert report.get(key), key
    assert "python socket blocked" in report["network"]  # measured from inside a session
    assert "DATAMIND" not in report["environment"] and "HOME" in report["environment"]
    if os.geteuid() == 0 and "own uid" in report["user"]:
        assert "[probe: uid 0]" not in report["user"]
    from datamind_ext.interpreter.isolation import LAYERS, layers

    summary = layers(report)
    assert set(summary) == set(LAYERS) and all(v.startswith(("on: ", "OFF: ")) for v in summary.values()), summary
    if os.geteuid() == 0 and "own uid" in report["user"] and "Landlock" in report.get("filesystem_view", ""):
        assert all(v.startswith("on: ") for v in summary.values()), summary  # root with Landlock: every layer
    for layer in ("memory accounting", "seccomp", "mount view"):  # each says why when it is off
        assert summary[layer].startswith("on: ") or len(summary[layer]) > len("OFF: not reported"), summary

"""Cells that attack their own session's machinery (issue 17): the channel to the pool, error
rendering, signals, builtins and modules the runner relies on, replay, and cleanup. Each test
failed on the interpreter before these defects were fixed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import pytest_asyncio

from datamind_ext.interpreter import InterpreterPool, Limits

pytestmark = pytest.mark.asyncio(loop_scope="module")

LIMITS = Limits(timeout_s=20, interrupt_grace_s=3, memory_mib=1024, output_max_chars=600)
REPO = Path(__file__).resolve().parents[1]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool():
    async with InterpreterPool(limits=LIMITS, max_sessions=6, spare_sessions=1, preload=["pandas"]) as p:
        yield p
    assert p.processes() == []


_WRITE_INTO_CHANNEL = """
import os, struct
def frame(body):
    return struct.pack('>I', len(body)) + body
written = 0
for fd in os.listdir('/proc/self/fd'):
    try:
        if os.readlink(f'/proc/self/fd/{fd}').startswith('socket:'):
            os.write(int(fd), PAYLOAD)
            written += 1
    except OSError:
        pass
print('wrote', written)
"""

_FORGED = json.dumps(
    {"type": "cell_reply", "seq": 2, "nonce": "0" * 16, "output": "FORGED\n", "stdout": "FORGED\n", "stderr": "", "ok": True, "error": None, "error_name": None, "error_value": None,
     "interrupted": False, "output_chars": 7, "truncated_chars": 0, "cell_s": 0.0, "stray_threads": 0}
).encode()


@pytest.mark.parametrize(
    "payload",
    ["frame(b'[]')", "frame(b'{{{')", "frame(b'\\xff\\xfe')", "b'\\xff' * 64", "frame(b'null') * 3", f"frame({_FORGED!r})"],
    ids=["list", "bad-json", "bad-utf8", "garbage-header", "three-frames", "forged-reply"],
)
async def test_bytes_written_into_the_channel_never_make_run_raise_nor_desynchronise(pool, payload):
    async with pool.session() as s:
        assert (await s.run("kept = 41")).ok
        r = await s.run(_WRITE_INTO_CHANNEL.replace("PAYLOAD", payload))
        assert not r.ok and r.restarted and r.error_name == "SessionBroken" and r.replayed_cells == 1, r
        for i in range(3):  # every later result is that cell's own, not one off
            r = await s.run(f"print(kept + {i})")
            assert r.ok and r.output == f"{41 + i}\n", r
    await _healthy(pool)


async def test_huge_and_unencodable_error_text_is_bounded_and_clean(pool):
    async with pool.session() as s:
        r = await s.run("raise ValueError('E' * 30_000_000)")
        assert not r.ok and r.error_name == "ValueError" and "characters cut" in r.error
        assert len(r.error) <= LIMITS.output_max_chars + 300 and len(r.error_value) <= LIMITS.output_max_chars + 300
        r = await s.run("raise ValueError('\\ud800 \\x00 end')")
        assert not r.ok and "\x00" not in r.error and r.error.encode("utf-8") and r.error_value.encode("utf-8")
        assert r.error.endswith("end")
        r = await s.run("class E(Exception):\n    def __str__(self):\n        raise RuntimeError('no')\nraise E()")
        assert not r.ok and r.error_name == "E"
        r = await s.run("raise SystemExit('x' * 1_000_000)")
        assert not r.ok and len(r.error) <= LIMITS.output_max_chars + 300
        assert (await s.run("print('fine')")).output == "fine\n"


async def test_an_exception_whose_rendering_poisons_the_runner_poisons_only_its_cell(pool):
    """Rendering a failure runs the cell's own code (``__str__``) after the guard restored the
    machinery: the guard restores it again, so an alarm or a patched runner module set there
    never reaches the next cell."""
    code = (
        "class E(Exception):\n    def __str__(self):\n        import signal, sys\n        signal.alarm(1)\n"
        "        sys.modules['datamind_ext.interpreter.messages'].decode = None\n        return 'boom'\nraise E()"
    )
    async with pool.session() as s:
        assert (await s.run("kept = 5")).ok
        r = await s.run(code)
        assert not r.ok and r.error_name == "E" and "boom" in r.error and not r.restarted, r
        r = await s.run("import time\ntime.sleep(1.5)\nprint(kept)", timeout_s=10)
        assert r.ok and r.output == "5\n" and not r.restarted, r


async def test_keyboard_interrupt_raised_by_the_cell_is_not_a_timeout(pool):
    async with pool.session() as s:
        r = await s.run("raise KeyboardInterrupt")
        assert not r.ok and not r.timed_out and r.error_name == "KeyboardInterrupt" and "KeyboardInterrupt" in r.error
        r = await s.run("import time\ntime.sleep(60)", timeout_s=0.5)  # the pool's own interrupt still is one
        assert r.timed_out and r.error_name == "TimeoutError"


@pytest.mark.parametrize(
    "poison",
    [
        "import signal\nsignal.alarm(1)",
        "import signal\nsignal.setitimer(signal.ITIMER_REAL, 0.5)",
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})",
        "import builtins\nbuiltins.__import__ = None",
        "import builtins\nbuiltins.compile = None\nbuiltins.exec = None",
        "import sys\nsys.modules['json'].dumps = None\nsys.modules['json'].JSONEncoder.encode = None",
        "import sys\nsys.modules['datamind_ext.interpreter.wire'].send_sync = None",
        "import sys\nm = sys.modules['datamind_ext.interpreter.messages']\nm.decode = None\nm.isfinite = None",
        "import sys\nm = sys.modules['datamind_ext.interpreter.messages']\nm.RunCell._FIELDS = ()\nm.Message._invalid = None",
        "import sys\nsys.modules['datamind_ext.interpreter.capture'].merge = None\nsys.modules['os'].write = None",
        "import sys, os\nsys.stdout = None\nos.close(1)",
        "import sys\nsys.settrace(lambda *a: 1 / 0)\nsys.setrecursionlimit(30)",
        "__builtins__ = {}",
    ],
    ids=["alarm", "itimer", "sigint-ignored", "import", "compile", "json", "runner-wire", "runner-messages", "runner-records", "runner-capture", "stdout", "trace", "globals-builtins"],
)
async def test_a_cell_that_poisons_its_session_poisons_only_itself(pool, poison):
    async with pool.session() as s:
        assert (await s.run("kept = 5")).ok
        await s.run(poison)
        r = await s.run("import time, json\ntime.sleep(1.2)\nprint(json.dumps(kept))", timeout_s=5)
        assert r.ok and r.output == "5\n" and not r.restarted, r
        r = await s.run("import time\ntime.sleep(60)", timeout_s=0.5)  # the interrupt still works
        assert r.timed_out and not r.restarted, r


async def test_a_cell_that_fakes_the_dict_versions_the_guard_reads_cannot_keep_its_patch(pool):
    """The guard skips a namespace whose dict version (read through ctypes) is unchanged: a cell
    that makes ctypes report json's version from before it patched json, and removes builtins
    the guard iterates with, neither crashes the runner nor keeps the patch."""
    poison = (
        "import ctypes, json, builtins\nat = id(json.__dict__) + 24\nreal = ctypes._SimpleCData.__dict__['value'].__get__\n"
        "old = real(ctypes.c_uint64.from_address(at))\n"
        "ctypes.c_uint64.value = property(lambda s: old if ctypes.addressof(s) == at else real(s))\n"
        "json.dumps = None\nbuiltins.enumerate = None\nbuiltins.id = None"
    )
    async with pool.session() as s:
        assert (await s.run("kept = 5")).ok
        r = await s.run(poison)
        assert r.ok and not r.restarted, r
        r = await s.run("import json\nprint(json.dumps(kept))")
        assert r.ok and r.output == "5\n" and not r.restarted, r


async def test_replay_that_fails_again_falls_back_to_a_fresh_session(pool):
    async with pool.session() as s:
        # Succeeds the first time, crashes when replayed (the flag file persists across rebuilds).
        assert (await s.run("import os\nif os.path.exists('flag'):\n    os._exit(9)\nopen('flag', 'w').close()\nkept = 1")).ok
        r = await s.run("import os\nos._exit(3)")
        assert not r.ok and r.restarted and r.replayed_cells == 0 and "restarted fresh" in r.error and "replaying" in r.error, r
        r = await s.run("print('kept' in globals())")
        assert r.ok and r.output == "False\n"


async def test_replay_has_its_own_budget_and_does_not_hold_other_sessions():
    limits = Limits(timeout_s=10, replay_budget_s=3)
    async with InterpreterPool(limits=limits, max_sessions=3, max_concurrency=1, spare_sessions=1, preload=[]) as p:
        async with p.session() as a, p.session() as b:
            for _ in range(8):
                assert (await a.run("import time\ntime.sleep(0.6)")).ok
            crash = asyncio.create_task(a.run("import os\nos._exit(1)"))
            await asyncio.sleep(0.5)  # a is now replaying its 8 cells
            r = await b.run("print(1)")
            assert r.ok and r.output == "1\n"
            assert not crash.done(), "b waited for a's whole replay"
            r = await crash
            assert r.restarted and "budget" in r.error and "restarted fresh" in r.error and r.replayed_cells == 0, r
            assert (await a.run("print(2)")).output == "2\n"
    assert p.processes() == []


async def test_pool_sigkill_removes_its_temporary_root():
    script = textwrap.dedent(
        """
        import asyncio, json
        from datamind_ext.interpreter import InterpreterPool
        async def main():
            pool = await InterpreterPool(preload=[], max_sessions=2).start()
            s = await pool.open_session()
            r = await s.run("open('left.txt', 'w').write('x' * 1000)\\nimport os\\nos.mkfifo('fifo')")
            print(json.dumps({"root": str(pool.root), "ok": r.ok, "error": r.error, "zygote": pool.zygote_pid}), flush=True)
            await asyncio.sleep(120)
        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=REPO, text=True, env=env)
    info = json.loads(proc.stdout.readline())
    root = Path(info["root"])
    assert info["ok"], info
    assert (root / "sessions").is_dir()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60  # generous: a loaded 2-core machine; the zygote removes it at once
    group = f"datamind-interp-{info['zygote']}"  # its memory cgroup, where memory cgroups are in use
    def left() -> list[str]:
        return [str(root)] * root.exists() + [str(p) for p in Path("/sys/fs/cgroup").glob(f"**/{group}")]
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="per-session uids need root")
async def test_uid_ranges_of_live_pools_never_overlap():
    script = textwrap.dedent(
        """
        import asyncio, json, sys
        from datamind_ext.interpreter import InterpreterPool
        async def main():
            async with InterpreterPool(preload=[], max_sessions=1500, spare_sessions=0) as pool:
                print(json.dumps([pool.uid_range.start, pool.uid_range.stop]), flush=True)
                sys.stdin.readline()
        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    other = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO, text=True, env=env)
    try:
        theirs = range(*json.loads(other.stdout.readline()))
        pools = [InterpreterPool(preload=[], max_sessions=n, spare_sessions=0) for n in (1500, 3000, 10)]
        for p in pools:
            await p.start()
        try:
            ranges = [theirs, *(p.uid_range for p in pools)]
            assert all(len(r) > 0 for r in ranges)
            for i, x in enumerate(ranges):
                for y in ranges[i + 1 :]:
                    assert x.stop <= y.start or y.stop <= x.start, (x, y)
        finally:
            for p in pools:
                await p.close()
    finally:
        other.stdin.close()
        other.wait(60)


async def _healthy(pool) -> None:
    async with pool.session() as s:
        r = await s.run("print(1 + 1)")
        assert r.ok and r.output == "2\n", r

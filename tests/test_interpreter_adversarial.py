"""Adversarial cells: each asserts the observation, that the pool still works, and that no
process leaked (the pool's processes are exactly the zygote and the live sessions)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import pytest_asyncio

from datamind_ext.interpreter import InterpreterPool, Limits
from datamind_ext.protocol import observation_text

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = "sk-datamind-test-secret-4242"
LIMITS = Limits(
    timeout_s=20, interrupt_grace_s=3, cpu_s_per_cell=2, memory_mib=512, max_processes=24, max_file_mib=8,
    output_max_chars=600,
)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("adv")
    pd.DataFrame({"a": range(100), "b": range(100)}).to_csv(d / "sales.csv", index=False)
    return d / "sales.csv"


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["own-uid", "shared-uid"])
async def pool(request):
    """Both modes: per-session uids (root) and the fallback where sessions keep the pool's uid."""
    if request.param == "own-uid" and os.geteuid() != 0:
        pytest.skip("per-session uids need root")
    os.environ["DATAMIND_TEST_API_KEY"] = SECRET  # the parent's secret a session must not see
    try:
        async with InterpreterPool(limits=LIMITS, max_sessions=8, isolate_user=request.param == "own-uid") as p:
            yield p
    finally:
        os.environ.pop("DATAMIND_TEST_API_KEY", None)
    assert p.processes() == []


async def healthy(pool) -> None:
    """The pool still serves a new session, and nothing but zygote + live sessions is running."""
    async with pool.session() as s:
        r = await s.run("import pandas as pd\nprint(pd.DataFrame({'x': [1, 2]}).x.sum())")
        assert r.ok and r.output == "3\n", r
    for _ in range(100):
        expected = {*pool.service_pids, *pool.spare_pids} | {s.pid for s in pool.sessions.values() if s.pid}
        procs = set(pool.processes())
        if procs == expected:
            return
        await asyncio.sleep(0.05)
    assert procs == expected, f"leaked processes: {sorted(procs - expected)}"


async def test_fork_bomb(pool):
    async with pool.session() as s:
        r = await s.run("import os\nwhile True:\n    os.fork()")
        assert not r.ok and ("BlockingIOError" in r.error or "Resource temporarily unavailable" in r.error), r.error
        assert (await s.run("print('after the bomb')")).output == "after the bomb\n"
    await healthy(pool)


async def test_subprocesses_do_not_outlive_their_cell(pool):
    async with pool.session() as s:
        # Found by its command line: its pid inside the session's own pid namespace means nothing here.
        r = await s.run("import subprocess\np = subprocess.Popen(['sleep', '60.0417'])\nprint(p.pid)")
        assert r.ok
        assert not [pid for pid in _pids_running(b"sleep\x0060.0417\x00")], "the cell's child outlived it"
    await healthy(pool)


def _pids_running(cmdline: bytes) -> list[int]:
    out = []
    for e in os.listdir("/proc"):
        try:
            if e.isdigit() and Path(f"/proc/{e}/cmdline").read_bytes() == cmdline and _alive(int(e)):
                out.append(int(e))
        except OSError:
            pass
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


async def test_memory_bomb_and_numpy_under_the_limit(pool):
    async with pool.session() as s:
        assert (await s.run("import numpy as np\nprint(np.ones(10**6).sum())")).output == "1000000.0\n"
        r = await s.run("blocks = []\nwhile True:\n    blocks.append(bytearray(32 * 1024 * 1024))")
        assert not r.ok and "MemoryError" in r.error and "memory limit is 512 MiB" in r.error
        r = await s.run("x = bytearray(8 * 1024 ** 3)")
        assert not r.ok and "MemoryError" in r.error
        assert (await s.run("del blocks\nimport numpy as np\nprint(np.arange(3).sum())")).output == "3\n"
    await healthy(pool)


async def test_infinite_loop_in_a_thread(pool):
    async with pool.session() as s:
        assert (await s.run("kept = 1")).ok
        old_pid = s.pid
        r = await s.run("import threading\nthreading.Thread(target=lambda: [0 for _ in iter(int, 1)], daemon=True).start()")
        assert not r.ok and r.restarted and "thread(s) running" in r.error and r.replayed_cells == 1
        assert s.pid != old_pid and not Path(f"/proc/{old_pid}/status").exists()
        assert (await s.run("print(kept)")).output == "1\n"
    await healthy(pool)


async def test_thread_limit(pool):
    if not pool.uid_mode:
        pytest.skip("thread limits need a per-session uid (RLIMIT_NPROC)")
    async with pool.session() as s:
        r = await s.run("import threading, time\nfor _ in range(200):\n    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()")
        assert not r.ok and "can't start new thread" in r.error and r.restarted
    await healthy(pool)


async def test_giant_output(pool):
    async with pool.session() as s:
        # 10**6 lines in 1,000 writes: the output path is what is tested, and a million print calls can pass the
        # 2 s CPU limit on a loaded CI machine (it did: CpuTimeExceeded after 2 s of CPU).
        r = await s.run("for i in range(0, 10**6, 1000):\n    print('\\n'.join(map(str, range(i, i + 1000))))")
        assert r.ok and r.output.startswith("0\n1\n2\n") and r.output.endswith("999999\n")
        assert len(r.output) <= LIMITS.output_max_chars and r.output_chars == 6888890
        assert f"[{r.truncated_chars} characters cut]" in r.output
        r = await s.run("import os\nos.write(1, b'y' * 5_000_000)\nprint('end')")
        assert r.ok and len(r.output) <= LIMITS.output_max_chars and "characters cut" in r.output
        text, _ = observation_text(r, 2048)
        assert len(text) <= 2048
    await healthy(pool)


async def test_binary_output(pool):
    async with pool.session() as s:
        r = await s.run("import sys, os\nsys.stdout.buffer.write(bytes(range(256)))\nprint()\nos.write(1, b'\\xff\\xfe\\x00end')")
        assert r.ok and isinstance(r.output, str) and "\x00" not in r.output and r.output.endswith("end")
        json.dumps(r.output)
        r.output.encode("utf-8")
    await healthy(pool)


async def test_writing_outside_the_directory(pool, data_file):
    before = _digest(data_file)
    async with pool.session(files=[data_file]) as s:
        for target in ("/tmp/datamind-evil.txt", str(data_file), str(pool.root / "evil.txt"), "../evil.txt"):
            r = await s.run(f"open({target!r}, 'w').write('x')")
            if target == "/tmp/datamind-evil.txt" and not s.isolation.get("tmp", "off").startswith("off"):
                assert r.ok, r.error  # the session's private /tmp: the host never sees it (checked below)
                continue
            # PermissionError; FileNotFoundError where the filesystem view hides the original
            assert not r.ok and ("PermissionError" in r.error or (target == str(data_file) and "FileNotFoundError" in r.error)), (target, r.error)
        r = await s.run("open('sales.csv', 'a').write('1,2\\n')")
        assert not r.ok and "PermissionError" in r.error
        if pool.uid_mode:  # the kernel refuses too, whatever Python-level hook is bypassed
            r = await s.run(
                "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                f"fd = libc.open({str(data_file).encode()!r}, os.O_WRONLY | os.O_APPEND)\n"
                "fd2 = libc.open(b'sales.csv', os.O_WRONLY | os.O_APPEND)\nprint(fd, fd2)"
            )
            assert r.ok and r.output == "-1 -1\n"
        assert (await s.run("open('mine.csv', 'w').write('ok')")).ok
    assert not Path("/tmp/datamind-evil.txt").exists()
    assert _digest(data_file) == before
    await healthy(pool)


async def test_deleting_the_data_file(pool, data_file):
    before = _digest(data_file)
    async with pool.session(files=[data_file]) as s:
        r = await s.run("import os\nos.remove('sales.csv')")
        assert not r.ok and "PermissionError" in r.error
        if pool.uid_mode:
            r = await s.run("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nprint(libc.unlink(b'sales.csv'), libc.rename(b'sales.csv', b'x.csv'), libc.chmod(b'sales.csv', 0o666))")
            assert r.output == "-1 -1 -1\n"
        assert (await s.run("import pandas as pd\nprint(len(pd.read_csv('sales.csv')))")).output == "100\n"
    assert _digest(data_file) == before
    async with pool.session(files=[data_file]) as s:
        assert (await s.run("import os\nprint(os.path.getsize('sales.csv'))")).output == f"{data_file.stat().st_size}\n"
    await healthy(pool)


async def test_reading_the_parents_environment(pool):
    assert os.environ["DATAMIND_TEST_API_KEY"] == SECRET
    async with pool.session() as s:
        code = (
            "import os\nprint(dict(os.environ))\n"
            f"for pid in ('self', {os.getpid()}, {pool.zygote_pid}, os.getppid(), 1):\n"
            "    try:\n        print(open(f'/proc/{pid}/environ', 'rb').read())\n"
            "    except OSError as e:\n        print('denied', pid, type(e).__name__)\n"
        )
        r = await s.run(code)
        assert r.ok and SECRET not in r.output and "DATAMIND_TEST_API_KEY" not in r.output
        assert "HOME" in r.output
    await healthy(pool)


async def test_opening_a_socket(pool):
    async with pool.session() as s:
        r = await s.run("import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=1)")
        assert not r.ok and "PermissionError" in r.error and "network access is disabled" in r.error
        if "network namespace" in pool.isolation.get("network", "") and "only" not in pool.isolation["network"]:
            r = await s.run(
                "import ctypes, struct\nlibc = ctypes.CDLL(None, use_errno=True)\nfd = libc.socket(2, 1, 0)\n"
                "addr = struct.pack('=H', 2) + struct.pack('!H4s8x', 53, bytes([1, 1, 1, 1]))\n"
                "print(libc.connect(fd, addr, len(addr)), ctypes.get_errno())"
            )
            # ENETUNREACH: no interface in the namespace; EACCES where Landlock denies TCP connect first
            assert r.ok and r.output in ("-1 101\n", "-1 13\n"), r.output
    await healthy(pool)


async def test_killing_the_parent(pool):
    zygote = pool.zygote_pid
    async with pool.session() as s:
        r = await s.run(f"import os, signal\nos.kill({zygote}, signal.SIGKILL)")
        assert not r.ok and r.error_name in ("PermissionError", "ProcessLookupError"), r
        await s.run("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)")  # 0 (own group) in its own pid namespace
        assert Path(f"/proc/{zygote}").exists()
        r = await s.run("import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('still here')")
        assert Path(f"/proc/{zygote}").exists()
    assert pool.zygote_pid == zygote and Path(f"/proc/{zygote}").exists()
    await healthy(pool)


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("import ctypes\nctypes.string_at(0)", "SIGSEGV (segmentation fault)"),
        ("import os\nos._exit(3)", "exited with code 3"),
    ],
    ids=["ctypes-segfault", "os-exit"],
)
async def test_crashes_rebuild_the_session_by_replay(pool, code, why):
    async with pool.session() as s:
        assert (await s.run("import pandas as pd\ndf = pd.DataFrame({'v': [1, 2, 3]})")).ok
        r = await s.run(code)
        assert not r.ok and not r.timed_out and r.restarted and why in r.error and r.replayed_cells == 1, r.error
        text, _ = observation_text(r)
        assert text.startswith("The code failed:") and why in text
        assert (await s.run("print(df.v.sum())")).output == "6\n"
    await healthy(pool)


async def test_a_cell_killing_its_own_process(pool):
    """Shared pid namespace: the session dies and is rebuilt by replay. Own pid namespace: the
    session is that namespace's init, which the kernel keeps from signals sent inside it."""
    async with pool.session() as s:
        assert (await s.run("kept = 6")).ok
        r = await s.run("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\nprint('alive')")
        if s.isolation.get("proc", "").startswith("own pid namespace"):
            assert r.ok and r.output == "alive\n" and not r.restarted, r
        else:
            assert not r.ok and r.restarted and "killed by SIGKILL" in r.error and r.replayed_cells == 1, r
        assert (await s.run("print(kept)")).output == "6\n"
    await healthy(pool)


async def test_cpu_time_limit(pool):
    async with pool.session() as s:
        r = await s.run("while True:\n    pass", timeout_s=120)  # the CPU limit (2 s) must fire, not the wall clock
        assert not r.ok and not r.timed_out and "CpuTimeExceeded" in r.error
        assert (await s.run("print('ok')")).output == "ok\n"
    await healthy(pool)


async def test_file_size_limit(pool):
    async with pool.session() as s:
        r = await s.run("with open('big.bin', 'wb') as f:\n    f.write(b'0' * (9 * 1024 * 1024))")
        assert not r.ok and "File too large" in r.error
    await healthy(pool)


async def test_sessions_cannot_signal_each_other(pool):
    async with pool.session() as a, pool.session() as b:
        r = await b.run(f"import os, signal\nos.kill({a.pid}, signal.SIGKILL)")
        # another uid (PermissionError), or, in a pid namespace of its own, no such process at all
        assert not r.ok and r.error_name in ("PermissionError", "ProcessLookupError"), r
        assert (await a.run("print('a lives')")).output == "a lives\n"
    await healthy(pool)

"""A plain python-subprocess session factory for the turn-loop tests.

``PySubprocessSession`` is a plain persistent python subprocess (no sandbox), so the loop's
tests exercise real code execution, state across turns, timeouts and process cleanup
independently of the sandboxed interpreter package; the real interpreter is tested through
the loop in ``test_agent_interpreter.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

DRIVER = r"""
import contextlib, io, json, sys, traceback
ns = {"__name__": "__main__"}
for line in sys.stdin:
    code = json.loads(line)["code"]
    buf = io.StringIO()
    ok, err = True, None
    with contextlib.redirect_stdout(buf):
        try:
            exec(compile(code, "<cell>", "exec"), ns)
        except BaseException:
            ok, err = False, traceback.format_exc(limit=0).strip()
    sys.__stdout__.write(json.dumps({"output": buf.getvalue(), "ok": ok, "error": err}) + "\n")
    sys.__stdout__.flush()
"""


@dataclass
class Result:
    output: str
    ok: bool
    error: str | None
    timed_out: bool = False


class PySubprocessSession:
    """One python process per session; ``close()`` kills its process group."""

    live: ClassVar[set[int]] = set()  # pids of sessions not yet closed (leak checks)

    def __init__(self, files: list[str], timeout_s: float = 10.0) -> None:
        self.files, self.timeout_s = files, timeout_s
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Self:
        cwd = str(Path(self.files[0]).parent) if self.files else None
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-u", "-c", DRIVER, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, cwd=cwd, start_new_session=True)
        PySubprocessSession.live.add(self.proc.pid)
        return self

    async def run(self, code: str) -> Result:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        if self.proc.returncode is not None:
            return Result("", False, "session is dead")
        self.proc.stdin.write((json.dumps({"code": code}) + "\n").encode())
        await self.proc.stdin.drain()
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), self.timeout_s)
        except TimeoutError:
            self._kill()
            return Result("", False, f"timed out after {self.timeout_s} s", timed_out=True)
        return Result(**json.loads(line))

    def _kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    async def __aexit__(self, *exc: object) -> None:
        self._kill()
        if self.proc is not None:
            await self.proc.wait()
            PySubprocessSession.live.discard(self.proc.pid)


def py_factory(timeout_s: float = 10.0):
    return lambda files: PySubprocessSession(list(files), timeout_s)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False

"""The result of one cell, as seen by callers (rollouts, synthesis, evaluation), and the one
place a session's reply or exit is turned into it."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from datamind_ext.interpreter.capture import clean_text
from datamind_ext.interpreter.messages import (
    CellReply,
    Exited,
    Malformed,
    RunCell,
    decode,
)
from datamind_ext.protocol.observation import truncate_middle


@dataclass(frozen=True)
class ExecResult:
    """What one cell did.

    ``output``, ``ok``, ``error`` and ``timed_out`` are what
    :func:`datamind_ext.protocol.observation_text` reads to build the model's observation; the
    other fields are for logs and metrics.
    """

    output: str  # stdout and stderr interleaved as written (Python-level and fds 1/2), head + tail kept
    ok: bool
    error: str | None = None  # the rendered error (traceback, or what happened to the process)
    timed_out: bool = False
    duration_s: float = 0.0  # wall time seen by the caller, from sending the cell to its result
    cell_s: float = 0.0  # time the code itself ran inside the session
    output_chars: int = 0  # characters printed before truncation
    truncated_chars: int = 0  # characters cut from the middle of ``output``
    restarted: bool = False  # the session's process was rebuilt after this cell (crash, timeout kill, stray threads)
    replayed_cells: int = 0  # successful cells replayed into the rebuilt process
    error_name: str | None = None  # the exception's type ("KeyError"), or "SessionCrashed", "SessionBroken", "TimeoutError"
    error_value: str | None = None  # its message, bounded and cleaned
    notice: str | None = None  # the session lost its variables before this cell (a replay that could not be completed)
    # Each stream alone, head + tail kept: what the cell wrote through sys.stdout / sys.stderr.
    # Text written straight to file descriptors 1 and 2 (C code, child processes) is in ``output`` only.
    stdout: str = ""
    stderr: str = ""


def parse_reply(raw: Any, req: RunCell, max_chars: int) -> CellReply | None:
    """The session's reply to ``req`` with every field type-checked (:func:`messages.decode`) and
    its text bounded and cleaned, or None when it is not that reply (wrong shape, an earlier
    cell's, a forged frame)."""
    try:
        reply = decode(raw, CellReply)
    except Malformed:
        return None
    if not reply.answers(req):
        return None
    return dataclasses.replace(
        reply,
        output=_bounded(reply.output, max_chars),
        stdout=_bounded(reply.stdout, max_chars),
        stderr=_bounded(reply.stderr, max_chars),
        error=_bounded(reply.error, max_chars),
        error_name=_bounded(reply.error_name, max_chars),
        error_value=_bounded(reply.error_value, max_chars),
    )


def answers_earlier(raw: Any, sent: Collection[tuple[int, str]]) -> bool:
    """Whether ``raw`` is a well-formed reply to one of the requests ``sent`` ((cell, nonce) pairs)."""
    try:
        reply = decode(raw, CellReply)
    except Malformed:
        return False
    return (reply.seq, reply.nonce) in sent


def _bounded(text: str | None, max_chars: int) -> str | None:
    return None if text is None else clean_text(truncate_middle(text, max_chars + 256)[0])


def failure_kind(kind: str, reply: CellReply | None) -> str:
    if reply is not None:
        return reply.error_name or ("it left threads running" if reply.stray_threads else "error")
    return {"crashed": "its process died", "broken": "it corrupted the channel"}.get(kind, "it timed out")


def describe_exit(status: Exited | None) -> str:
    """What happened to a session's process, from the zygote's exit report (None: none came)."""
    if status is None:
        return "the session's process disappeared"
    if status.oom:
        return (
            "the session's process was killed for exceeding its memory limit "
            "(memory_mib counts everything it holds: allocations, memfd, files in /tmp and /dev/shm)"
        )
    if status.signal is not None:
        sig = status.signal
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        what = {
            "SIGSEGV": " (segmentation fault)",
            "SIGKILL": " (killed: by itself, the CPU-time limit or the out-of-memory killer)",
            "SIGABRT": " (aborted)",
            "SIGBUS": " (bus error)",
            "SIGFPE": " (arithmetic fault)",
            "SIGXCPU": " (CPU-time limit)",
        }.get(name, "")
        return f"the session's process was killed by {name}{what}"
    return f"the session's process exited with code {status.code}"

"""The result of one cell, as seen by callers (rollouts, synthesis, evaluation), and the one
place a session's reply or exit is turned into it."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any

from datamind_ext.interpreter.capture import clean_text
from datamind_ext.protocol.observation import truncate_middle


@dataclass(frozen=True)
class ExecResult:
    """What one cell did.

    ``output``, ``ok``, ``error`` and ``timed_out`` are what
    :func:`datamind_ext.protocol.observation_text` reads to build the model's observation; the
    other fields are for logs and metrics.
    """

    output: str
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


_REPLY_TYPES: dict[str, type | tuple[type, ...]] = {
    "output": str, "ok": bool, "error": (str, type(None)), "error_name": (str, type(None)),
    "error_value": (str, type(None)), "interrupted": bool, "output_chars": int, "truncated_chars": int,
    "cell_s": (int, float), "stray_threads": int,
}


def parse_reply(raw: Any, req: dict[str, Any], max_chars: int) -> dict[str, Any] | None:
    """The session's reply to ``req`` with every field type-checked and its text bounded and
    cleaned, or None when it is not that reply (wrong shape, an earlier cell's, a forged frame)."""
    if not isinstance(raw, dict) or raw.get("seq") != req["cell"] or raw.get("nonce") != req["nonce"]:
        return None
    reply = {}
    for key, kind in _REPLY_TYPES.items():
        value = raw.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return None
        reply[key] = value
    if reply["ok"] == (reply["error"] is not None):
        return None
    for key in ("output", "error", "error_name", "error_value"):
        if reply[key] is not None:
            reply[key] = clean_text(truncate_middle(reply[key], max_chars + 256)[0])
    return reply


def failure_kind(kind: str, reply: dict[str, Any] | None) -> str:
    if reply is not None:
        return reply["error_name"] or ("it left threads running" if reply["stray_threads"] else "error")
    return {"crashed": "its process died", "broken": "it corrupted the channel"}.get(kind, "it timed out")


def describe_exit(status: dict[str, Any] | None) -> str:
    if status is None:
        return "the session's process disappeared"
    if status.get("oom"):
        return (
            "the session's process was killed for exceeding its memory limit "
            "(memory_mib counts everything it holds: allocations, memfd, files in /tmp and /dev/shm)"
        )
    if "signal" in status:
        sig = status["signal"]
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
    return f"the session's process exited with code {status.get('code')}"

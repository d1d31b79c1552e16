"""The result of one cell, as seen by callers (rollouts, synthesis, evaluation)."""

from __future__ import annotations

from dataclasses import dataclass


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

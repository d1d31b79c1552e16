"""The observation text given to the model, built from an execution result in one place."""

from __future__ import annotations

from typing import Protocol


class ExecutionLike(Protocol):
    output: str
    ok: bool
    error: str | None
    timed_out: bool


NO_OUTPUT_HINT = "The code ran without printing anything. Use print() to see values."


def truncate_middle(text: str, max_chars: int) -> tuple[str, int]:
    """Keep the head and the tail of ``text``; return the text and how many characters were cut."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text, 0
    marker_len = 48
    keep = max(max_chars - marker_len, 2)
    head, tail = keep // 2, keep - keep // 2
    cut = len(text) - head - tail
    return f"{text[:head]}\n... [{cut} characters cut] ...\n{text[len(text) - tail:]}", cut


def observation_text(result: ExecutionLike, max_chars: int = 2048) -> tuple[str, int]:
    """Render a cell's result as the text inside ``<interpreter>``; returns (text, chars cut)."""
    if result.ok:
        body = result.output if result.output.strip() else NO_OUTPUT_HINT
        text = f"The code ran successfully:\n{body}"
    else:
        why = "timed out" if result.timed_out else "failed"
        parts = [f"The code {why}:"]
        if result.output.strip():
            parts.append(result.output.rstrip("\n"))
        if result.error:
            parts.append(result.error)
        text = "\n".join(parts)
    return truncate_middle(text, max_chars)

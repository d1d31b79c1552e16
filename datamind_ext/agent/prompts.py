"""The system prompt of a trajectory: file tasks (python) or database tasks (SQL tools).

The texts live in ``data/prompts/`` (written for this project); the same prompt is used by
RL, synthesis and evaluation so the model sees one format everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "data" / "prompts"
DB_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def task_kind(files: Sequence[str]) -> str:
    """``database`` when any data file is an SQLite database, else ``files``."""
    return "database" if any(str(f).lower().endswith(DB_SUFFIXES) for f in files) else "files"


def system_prompt(files: Sequence[str], *, max_turns: int = 10) -> str:
    """The system prompt naming the task's data files (by file name, as the session exposes them)."""
    kind = task_kind(files)
    template = (PROMPTS_DIR / f"system_{kind}.md").read_text(encoding="utf-8")
    names = [Path(f).name for f in files] or ["(no files)"]
    listing = "\n".join(f"- {n}" for n in names)
    return template.format(max_turns=max_turns, file_list=listing).strip()


def with_system_prompt(messages: Sequence[dict[str, str]], files: Sequence[str], *, max_turns: int = 10) -> list[dict[str, str]]:
    """``messages`` with our system prompt first, unless they already start with a system turn."""
    msgs = [dict(m) for m in messages]
    if msgs and msgs[0].get("role") == "system":
        return msgs
    return [{"role": "system", "content": system_prompt(files, max_turns=max_turns)}, *msgs]

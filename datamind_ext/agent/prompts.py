"""The system prompt of a trajectory: file tasks (python) or database tasks (SQL tools).

The texts live in ``datamind_ext/data/prompts/`` (package data, written for this project); the same prompt is used by
RL, synthesis and evaluation so the model sees one format everywhere. A recipe may name its own
template file instead (the CPU quickstart uses a short one, since every prompt token costs a tiny
model training time); synthesis writes the prompt into each trajectory and into the RL parquet,
and the held-out evaluation reads it back from there, so the stages still agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from datamind_ext.data import PACKAGE_DATA
from datamind_ext.errors import UserError

PROMPTS_DIR = PACKAGE_DATA / "prompts"
DB_SUFFIXES = (".sqlite", ".sqlite3", ".db")
TaskKind = Literal["files", "database"]


def task_kind(files: Sequence[str]) -> TaskKind:
    """``database`` when any data file is an SQLite database, else ``files``."""
    return "database" if any(str(f).lower().endswith(DB_SUFFIXES) for f in files) else "files"


def read_template(template: str | Path) -> str:
    """A prompt template's text: a file path, or the bare name of a prompt shipped with the package
    (``system_files_compact.md``); a missing file is the user's mistake, said in one line."""
    path = Path(template)
    if not path.is_file() and path.parent == Path() and (PROMPTS_DIR / path).is_file():
        path = PROMPTS_DIR / path
    if not path.is_file():
        raise UserError(f"system prompt template not found: {path}")
    return path.read_text(encoding="utf-8")


def system_prompt(files: Sequence[str], *, max_turns: int = 10, template: str | Path | None = None,
                  kind: TaskKind | None = None, knowledge: str | None = None) -> str:
    """The system prompt naming the task's data files (by file name, as the session exposes them).

    ``template``: a file with ``{file_list}`` and ``{max_turns}`` placeholders (default:
    ``datamind_ext/data/prompts/system_<kind>.md``, ``kind`` from the files unless given: programmatic synthesis
    reads databases with python, so it asks for ``files``). ``knowledge`` (a category workflow) is
    appended for knowledge-augmented sampling only; training trajectories keep the plain prompt.
    Placeholders are replaced literally, so templates may show code with braces.
    """
    text = read_template(template or PROMPTS_DIR / f"system_{kind or task_kind(files)}.md")
    names = [Path(f).name for f in files] or ["(no files)"]
    text = text.replace("{max_turns}", str(max_turns)).replace("{file_list}", "\n".join(f"- {n}" for n in names))
    if knowledge:
        text = text.rstrip() + f"\n\n# Suggested workflow for this kind of task\n{knowledge}\n"
    return text.strip()


def with_system_prompt(messages: Sequence[dict[str, str]], files: Sequence[str], *, max_turns: int = 10,
                       system: str | None = None) -> list[dict[str, str]]:
    """``messages`` with a system turn first, unless they already start with one: ``system``
    when given (the prompt a task was synthesized with), else our default prompt."""
    msgs = [dict(m) for m in messages]
    if msgs and msgs[0].get("role") == "system":
        return msgs
    return [{"role": "system", "content": system or system_prompt(files, max_turns=max_turns)}, *msgs]

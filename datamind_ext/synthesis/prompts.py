"""Prompt texts used by synthesis, each built in exactly one function.

The trajectory system prompt is the project's shared one (``data/prompts/system_files.md``,
also used by rollouts and evaluation) so synthesized trajectories train the same contract the
model is later run with. Generator, judge and critique prompts are synthesis-only.
"""

from __future__ import annotations

from pathlib import Path

from datamind_ext.synthesis.profile import TableProfile
from datamind_ext.synthesis.taxonomy import DATA_DIR, Category

SYSTEM_PROMPT_PATH = DATA_DIR / "prompts" / "system_files.md"
DEFAULT_MAX_TURNS = 10


def system_prompt(files: list[str], max_turns: int = DEFAULT_MAX_TURNS, knowledge: str | None = None) -> str:
    """The shared trajectory system prompt for ``files`` (by the names code reads them with).

    ``knowledge`` (a category workflow) is appended for knowledge-augmented sampling only; the
    exported training trajectories keep the plain prompt, as the paper trains without it.
    """
    template = SYSTEM_PROMPT_PATH.read_text(encoding="utf-8")
    text = template.replace("{max_turns}", str(max_turns)).replace(
        "{file_list}", "\n".join(f"- {Path(f).name}" for f in files)
    )
    if knowledge:
        text += f"\n\n# Suggested workflow for this kind of task\n{knowledge}\n"
    return text.rstrip() + "\n"


def generator_prompt(profile: TableProfile, category: Category, previous: str | None = None) -> str:
    """Ask an LLM for one task of ``category`` over ``profile``; with ``previous``, a harder
    task whose first step is that task's result (recursive easy-to-hard composition)."""
    examples = "\n".join(f"- {e}" for e in category.examples)
    parts = [
        "You write data-analysis questions that can be answered exactly by running Python over one data file.",
        f"# Data file\n{profile.meta_text()}\nSample rows: {profile.sample_rows[:3]}",
        f"# Task category: {category.name}\n{category.definition}\nExample questions of this category:\n{examples}",
    ]
    if previous:
        parts.append(
            "# Compose\nHere is an easier task on the same file:\n"
            f"{previous}\nWrite a harder task that first needs this task's result and then applies one more "
            f"{category.name.lower()} step to it."
        )
    parts.append(
        "Use only columns that exist. The answer must be a single number, name or yes/no. Reply exactly as:\n"
        "<question>...</question>\n<description>what must be computed, step by step</description>\n"
        f"<type>{category.slug}</type>"
    )
    return "\n\n".join(parts)


def judge_prompt(question: str, answers: list[str]) -> str:
    """Self-consistency judge (paper Fig. 12): are the N answers equivalent, and which is best?"""
    listed = "\n".join(f"<answer{i + 1}>{a}</answer{i + 1}>" for i, a in enumerate(answers))
    return (
        "You check whether several answers to the same data-analysis question agree.\n"
        "Answers agree if they are semantically equivalent; numbers agree within 3%; an answer must be complete.\n"
        f"Question: {question}\n{listed}\n"
        "Reply with <reasoning>...</reasoning><correct>yes|no</correct><number>k</number> where k is the best answer."
    )


def critique_text(reasoning: str) -> str:
    """The critique fed back to the expert when its answers disagree (critique-and-resample)."""
    return (
        "\n\nNote from a reviewer of earlier attempts at this question, which disagreed with each other:\n"
        f"{reasoning.strip()}\nWork carefully and check each intermediate result."
    )

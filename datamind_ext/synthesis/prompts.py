"""Synthesis-only prompt texts (generator, judge, critique), each built in exactly one function.

The trajectory system prompt is not here: it is the one of :mod:`datamind_ext.agent.prompts`,
shared with rollouts and evaluation, so synthesized trajectories train the contract the model is
later run with.
"""

from __future__ import annotations

from datamind_ext.synthesis.profile import TableProfile
from datamind_ext.synthesis.taxonomy import Category


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

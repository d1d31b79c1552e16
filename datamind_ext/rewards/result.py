"""The result of comparing one answer with its ground truth (every matcher and scorer returns it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MatchResult:
    """Whether an answer matches its ground truth, and the rule that decided."""

    correct: bool
    reason: str

    def __bool__(self) -> bool:
        return self.correct

"""The benchmark interface, its registry, and what scorers may use (judge, scratch folder).

A benchmark is a loader (official files -> :class:`EvalItem`) plus named scorers. Scorers are
async because the LLM judge is a network call; rule scorers simply return. The first scorer in
``scorers`` is the primary one (the headline pass@1 / pass@k); the others are reported beside it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from datamind_ext.evaluation.items import EvalItem, Response, Score
from datamind_ext.registry import Registry


@dataclass(frozen=True)
class JudgeVerdict:
    """What an LLM judge said: ``correct`` is None when it could not be reached or parsed."""

    correct: bool | None
    reason: str
    judge: str  # model and endpoint, recorded with every score it produced
    #: No verdict, and the policy says to score by the rule instead (labelled as such).
    fallback: bool = False


class Judge(Protocol):
    """An LLM judge deciding whether ``answer`` matches ``reference`` for ``question``."""

    label: str

    async def judge(self, *, question: str, reference: str, answer: str) -> JudgeVerdict: ...


@dataclass
class ScoringContext:
    """What scorers may use besides the item and the response."""

    work_dir: Path  # scratch and caches (BIRD gold result tables), inside the output folder
    judge: Judge | None = None
    sql_timeout_s: float = 60.0


class Benchmark(ABC):
    """One benchmark: how to load its official files and how to score a response."""

    name: ClassVar[str]
    title: ClassVar[str]
    #: Scorer names, primary first; each appears as a column in the summary.
    scorers: ClassVar[tuple[str, ...]]
    #: Scorer names whose ``correct`` is None by design (graded metrics such as ROUGE-L).
    graded_scorers: ClassVar[tuple[str, ...]] = ()
    #: Whether scoring is impossible without an LLM judge (DiscoveryBench).
    requires_judge: ClassVar[bool] = False

    def __init__(self) -> None:
        #: Facts about the loaded set the summary must state (questions dropped, ids repeated).
        self.notes: list[str] = []
        #: Ids of questions the loader left out on purpose: responses to them are skipped, not errors.
        self.dropped_ids: set[str] = set()

    @abstractmethod
    def load(self, data_dir: Path, *, need_files: bool = True) -> list[EvalItem]:
        """Read the official files under ``data_dir``.

        ``need_files``: also check that every data file the agent reads is present (running
        the agent needs them; scoring responses produced elsewhere does not).
        """

    @abstractmethod
    async def score(self, item: EvalItem, response: Response, ctx: ScoringContext) -> dict[str, Score]:
        """Every scorer's verdict on ``response``; never raises on a bad answer."""


BENCHMARKS: Registry[type[Benchmark]] = Registry("benchmark")


def get_benchmark(name: str) -> Benchmark:
    """An instance of the benchmark registered as ``name`` (importing the built-in ones first)."""
    import datamind_ext.evaluation.benchmarks  # noqa: F401  (registers the built-in benchmarks)

    return BENCHMARKS.get(name)()

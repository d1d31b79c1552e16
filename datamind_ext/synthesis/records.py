"""Typed records of the synthesis stage files, and the work items stages hand to their workers.

Each stage appends one record per finished item to its :class:`~datamind_ext.synthesis.store.JsonlStore`
and later stages, the audit, the filter and the benchmarks read them back; writers and readers
both use these classes, so a renamed key or a misspelt status is refused where it is read (file,
line and field named) instead of surfacing as a missing key three stages later. The stored keys
are the ones the stages wrote as plain dicts, so stores written before these classes still resume.
Core package: no verl or LLaMA-Factory import.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from datamind_ext.interpreter.config import InterpreterConfig
from datamind_ext.protocol import Trajectory
from datamind_ext.synthesis.config import SynthConfig
from datamind_ext.synthesis.profile import ProfileFailure, TableProfile
from datamind_ext.synthesis.programs import TaskSpec
from datamind_ext.synthesis.store import StoredRecord

#: ``ok``: usable by the next stage; ``rejected``: stored with its reason, never retried;
#: ``error``: an infrastructure failure, counted but never stored (the next run retries it).
Status = Literal["ok", "rejected", "error"]
#: Who wrote a trajectory: the programmatic expert (its task's exact program) or an LLM sample.
Sampler = Literal["expert", "llm"]
#: The stage that dropped an item (``filtered/dropped.jsonl``).
DropStage = Literal["tasks", "trajectories", "consistency", "audit", "rules"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------- stage files


class ProfileRecord(StoredRecord):
    """``profiles.jsonl``: one data file's tables (a sqlite file or workbook has several)."""

    file: str = Field(description="the file as the user's data folder names it")
    profiles: list[TableProfile]
    failures: list[ProfileFailure]


class UnmadeTask(_Strict):
    """The spec of an LLM task the generator did not write: only the category it was asked for."""

    category: str


class TaskRecord(StoredRecord):
    """``tasks.jsonl``: a candidate task, its ground truth once verified, or why it was rejected."""

    status: Status
    reason: str | None = None
    gold: str | None = Field(None, description="verified answer (programmatic); None for LLM tasks until consensus")
    spec: TaskSpec | UnmadeTask | None = None

    @model_validator(mode="after")
    def _ok_has_spec(self) -> TaskRecord:
        if self.status == "ok" and not isinstance(self.spec, TaskSpec):
            raise ValueError("an ok task needs its full spec")
        return self

    @property
    def task(self) -> TaskSpec:
        """The spec of a made task (every ``ok`` record has one)."""
        if not isinstance(self.spec, TaskSpec):
            raise TypeError(f"task {self.key} ({self.status}) has no spec")
        return self.spec

    @property
    def category(self) -> str | None:
        return self.spec.category if self.spec is not None else None


class TrajectoryRecord(StoredRecord):
    """``trajectories.jsonl``: one sampled trajectory of a task (expert or LLM)."""

    task_key: str
    sampler: Sampler
    round: int | None = Field(None, description="critique round of an LLM sample (0: first draw)")
    answer: str | None = Field(None, description="an LLM sample's final answer")
    status: Status
    reason: str | None = None
    trajectory: Trajectory | None = None

    @model_validator(mode="after")
    def _ok_has_trajectory(self) -> TrajectoryRecord:
        if self.status == "ok" and self.trajectory is None:
            raise ValueError("an ok sample needs its trajectory")
        return self


class ConsensusRecord(StoredRecord):
    """``consensus.jsonl``: the self-consistency and judge outcome of one LLM task."""

    task_key: str
    category: str | None = None
    status: Status
    reason: str | None = None
    selected: str | None = Field(None, description="id of the trajectory the judge picked")
    gold: str | None = Field(None, description="the agreed answer, the task's ground truth from now on")
    rounds: int | None = Field(None, description="sampling rounds used (critique rounds + 1 at most)")
    answers: list[str | None] = Field(default_factory=list, description="the last round's answers")

    @model_validator(mode="after")
    def _ok_has_selection(self) -> ConsensusRecord:
        if self.status == "ok" and self.selected is None:
            raise ValueError("an ok consensus needs its selected trajectory")
        return self


class Drop(_Strict):
    """``filtered/dropped.jsonl``: an item some stage did not keep, and why."""

    id: str
    task_id: str | None
    category: str | None
    reason: str
    stage: DropStage


# -------------------------------------------------------------------------------- work items


class ProfileItem(StoredRecord):
    """One file to profile."""

    path: str = Field(description="absolute path, read by the worker")
    shown: str = Field(description="the path as stored and shown to the user")
    max_rows: int


class VerifyBatch(_Strict):
    """Programs over one table, verified in one interpreter session."""

    specs: list[TaskSpec]
    interpreter: InterpreterConfig
    data_root: str = Field(description="folder relative data paths resolve from (the driver's cwd)")


class ExpertItem(StoredRecord):
    """One verified programmatic task to turn into an expert trajectory."""

    spec: TaskSpec
    gold: str
    interpreter: InterpreterConfig
    data_root: str
    max_obs_chars: int
    system_prompt: str | None
    answer_think: bool = True


class LLMTaskItem(_Strict):
    """One LLM task sampled in a Ray worker, with the samples an interrupted run already stored."""

    task: TaskRecord
    cfg: SynthConfig
    stored: dict[str, TrajectoryRecord]


class LLMTaskResult(_Strict):
    """What a Ray worker returns for an :class:`LLMTaskItem`."""

    consensus: ConsensusRecord
    samples: list[TrajectoryRecord]
    ledger: dict[str, int] = Field(description="the worker client's UsageLedger counts")

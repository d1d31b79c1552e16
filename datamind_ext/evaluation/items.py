"""The records every benchmark shares: an item to solve, one response to it, and its scores.

Loaders turn each benchmark's official files into :class:`EvalItem` rows; the runner (or a
responses file from another harness) supplies one :class:`Response` per item and run; each
benchmark's scorers turn that into named :class:`Score` values. Keeping one shape for all
five benchmarks lets the report, resume logic and plots stay benchmark-agnostic.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EvalItem(BaseModel):
    """One benchmark question, with everything needed to ask it and to score an answer."""

    model_config = ConfigDict(extra="forbid")

    benchmark: str
    item_id: str = Field(description="the benchmark's own id, as a string (joins responses to items)")
    question: str = Field(description="the user turn given to the agent (question plus answer-format rules)")
    gold: Any = Field(description="the reference answer, in the benchmark's own form")
    categories: dict[str, str] = Field(
        default_factory=dict, description="grouping keys for the report, e.g. {'level': 'hard'}"
    )
    files: list[str] = Field(default_factory=list, description="absolute paths of data files the agent may read")
    inline_files: dict[str, str] = Field(
        default_factory=dict, description="files written into the agent's workspace: name -> text (inline tables)"
    )
    database: str | None = Field(default=None, description="absolute path of the sqlite database (SQL items)")
    system: str | None = Field(
        default=None, description="the system prompt to ask with (synthesized sets keep the one they were made "
        "with); None: the project's default prompt for the item's files")
    meta: dict[str, Any] = Field(default_factory=dict)


class Response(BaseModel):
    """One answer to one item in one run, however it was produced."""

    model_config = ConfigDict(extra="forbid")

    item_id: str
    run: int = 0
    text: str = Field(default="", description="the final assistant turn or a whole transcript")
    sql: str | None = Field(default=None, description="SQL items: the predicted query, executed for scoring")
    result_csv: str | None = Field(default=None, description="SQL items: path of the predicted result table")
    trajectory: list[dict[str, str]] | None = Field(default=None, description="chat messages, when the agent ran")
    error: str | None = Field(default=None, description="why no answer was produced (agent failure), if so")
    void_reason: str | None = Field(
        default=None, description="why a responses-file record holds no usable prediction (scored wrong)")
    meta: dict[str, Any] = Field(default_factory=dict)


class Score(BaseModel):
    """One scorer's verdict on one response, recording which scorer and judge produced it."""

    model_config = ConfigDict(extra="forbid")

    correct: bool | None = Field(description="pass/fail; None = graded metric only, or could not be scored")
    value: float = Field(description="1.0/0.0 for pass/fail scorers, the metric for graded ones")
    scorer: str = Field(description="what produced the verdict, e.g. 'dabench-official (exact or |d|<1e-6)'")
    judge: str | None = Field(default=None, description="judge model and endpoint, when an LLM decided")
    reason: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)


class ItemResult(BaseModel):
    """One line of the per-item results JSONL."""

    model_config = ConfigDict(extra="forbid")

    benchmark: str
    item_id: str
    run: int
    categories: dict[str, str]
    answer: str | None
    gold: Any
    scores: dict[str, Score]
    error: str | None = None
    void_reason: str | None = Field(default=None, description="why there was no answer to score (scored wrong)")
    turns: int | None = None
    response_sha: str | None = Field(default=None, description="hash of the scored response (resume checks it)")

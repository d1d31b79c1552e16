"""Settings of one evaluation run, from ``eval/<bench>/config.yaml`` and command-line flags.

Defaults are the DataMind paper's evaluation protocol: 3 runs, temperature 0.7, top-p 0.95,
up to 10 turns, observations cut to 2,048 characters. Unknown keys are errors.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from datamind_ext.agent.config import AgentBudgets
from datamind_ext.config import StrictModel
from datamind_ext.interpreter import InterpreterConfig
from datamind_ext.rewards import JudgeConfig


class SamplingConfig(StrictModel):
    """Sent with every chat completion request."""

    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)


class EvalConfig(StrictModel):
    """One benchmark run."""

    benchmark: str | None = Field(None, description="the benchmark this config is for (checked against BENCH)")
    k: int = Field(3, ge=1, description="independent runs per question (pass@1 = mean over runs)")
    concurrency: int = Field(8, ge=1, description="episodes (or scorings) in flight at once")
    sql_timeout_s: float = Field(60.0, gt=0, description="time limit of one SQL query when scoring BIRD")
    request_timeout_s: float = Field(600.0, gt=0, description="time limit of one chat completion request")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    budgets: AgentBudgets = Field(default_factory=AgentBudgets)
    interpreter: InterpreterConfig = Field(
        default_factory=InterpreterConfig,
        description="the interpreter sessions: per-cell limits (time, memory, output) and their pool",
    )
    judge: JudgeConfig = Field(
        default_factory=lambda: JudgeConfig(on_unreachable="error"),
        description="the LLM judge (rewards.JudgeConfig): DiscoveryBench always, the 'paper' scorers when a model "
        "is set; unreachable -> the unit fails and a rerun retries it",
    )

    @field_validator("judge", mode="before")
    @classmethod
    def _judge_fails_loudly_by_default(cls, value: Any) -> Any:
        """A ``judge:`` block that does not choose ``on_unreachable`` gets ``error`` (not the
        reward's ``fallback_rule``): benchmark numbers must not silently mix judge and rule."""
        if isinstance(value, dict) and "on_unreachable" not in value:
            return {**value, "on_unreachable": "error"}
        return value

"""Configuration of the synthesis pipeline (one StrictModel; unknown keys are errors)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from datamind_ext.config import StrictModel
from datamind_ext.interpreter.config import InterpreterConfig
from datamind_ext.interpreter.limits import Limits
from datamind_ext.llm import EndpointConfig


class LLMConfig(EndpointConfig):
    """The expert endpoint of LLM synthesis (:class:`datamind_ext.llm.EndpointConfig`, synthesis defaults)."""

    base_url: str | None = Field("http://127.0.0.1:8000/v1", description="…/v1 root of the endpoint")
    model: str | None = "expert"
    judge_model: str | None = Field(None, description="model for the consistency judge (default: model)")
    max_retries: int = Field(5, ge=0, description="retries on 429/5xx/timeouts, with exponential backoff")


class SynthConfig(StrictModel):
    data: str = Field("data/samples", description="folder of data files")
    out: str = Field("synth_out", description="output folder (one JSONL per stage, resumable)")
    seed: int = 0
    backend: Literal["local", "ray"] = "local"
    ray_address: str | None = Field(None, description="connect to this Ray cluster instead of starting a local one")
    ray_num_cpus: int = Field(2, ge=1, description="CPUs of the local Ray instance")
    concurrency: int = Field(4, ge=1, description="work items in flight (interpreter sessions or Ray tasks)")
    verify_batch: int = Field(16, ge=1, description="programs of one table verified in one interpreter session (a kill loses at most concurrency x this)")
    max_rows: int = Field(5000, ge=10, description="rows read per table when profiling")
    max_task_rows: int = Field(200_000, ge=1, description="tables with more rows get no programmatic tasks")
    generator: Literal["programmatic", "llm", "both"] = "programmatic"
    tasks_per_table: int = Field(12, ge=1)
    llm_tasks_per_table: int = Field(2, ge=0)
    min_depth: int = Field(1, ge=1, le=5)
    max_depth: int = Field(5, ge=1, le=5)
    ops: list[str] | None = Field(
        None, description="programmatic operations a chain may use (default: all; names in synthesis/programs.py OPS)")
    expert_style: Literal["inspect_first", "direct"] = Field(
        "inspect_first", description="inspect_first: a first cell prints the table's shape and head, then one cell per "
        "step; direct: one cell loads the table and runs every step (short trajectories, for tiny models)")
    system_prompt: str | None = Field(
        None, description="system prompt template file ({file_list}, {max_turns}); a path, or the name of a prompt in datamind_ext/data/prompts; default system_files.md")
    answer_think: bool = Field(
        True, description="the expert's last turn opens with a fixed <think>; false: just <answer>, ten tokens fewer "
        "between the printed value and its copy (for tiny models)")
    samples_per_task: int = Field(3, ge=1, description="N trajectories sampled per LLM task")
    max_turns: int = Field(10, ge=1)
    critique_rounds: int = Field(1, ge=0, description="critique-and-resample rounds for inconsistent tasks")
    interpreter: InterpreterConfig = Field(
        default_factory=lambda: InterpreterConfig(limits=Limits(output_max_chars=4096)),
        description="the interpreter sessions programs and trajectories run in (limits.timeout_s: per cell)")
    max_obs_chars: int = Field(2048, ge=64)
    max_answer_chars: int = Field(1024, ge=1, description="rule filter: longest final answer")
    llm: LLMConfig = Field(default_factory=LLMConfig)
    tokenizer: str | None = Field(None, description="tokenizer folder for token counts in the card and SFT length filter")
    max_tokens: int | None = Field(None, description="drop trajectories longer than this many tokens at export")
    dataset_name: str = "datamind_synth"

    @field_validator("ops")
    @classmethod
    def _known_ops(cls, ops: list[str] | None) -> list[str] | None:
        from datamind_ext.synthesis.programs import OPS

        known = [o.name for o in OPS]
        unknown = [o for o in ops or [] if o not in known]
        if unknown:
            raise ValueError(f"unknown operation(s) {', '.join(unknown)}; known: {', '.join(known)}")
        if ops is not None and not ops:
            raise ValueError("ops: give at least one operation, or leave it unset for all")
        return ops

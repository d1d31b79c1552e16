"""Typed records that cross stage boundaries: the RL row, its ``extra_info``, a rollout's extra fields.

Synthesis writes :class:`RLRow` (``synthesis/export.py``); verl stores its columns and hands them
to our agent loop, trainer and scorer, which read them back through these classes instead of by
key. A rollout's numbers travel back as :class:`RolloutExtraFields` (verl's ``extra_fields``,
merged by verl into the ``extra_info`` the scorer sees). The choice lists live here once, as
``Literal`` types. No verl import.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from datamind_ext.protocol import (
    Message,  # one message type for prompts and expert trajectories
)

#: The kinds of task a scorer is registered for (``rewards.scorers``); the export writes one per row.
TaskKind = Literal["file_qa", "dabench", "choice", "sql", "judged"]
TASK_KINDS: tuple[str, ...] = get_args(TaskKind)

#: The one spelling of the void flag: the rollout extra field our agent loop sets (verl merges it
#: into the scorer's ``extra_info``), read by the trainer (RL mask) and the scorer.
VOID_FIELD = "dm_void"


def _plain(value: Any) -> Any:
    """numpy arrays / OmegaConf containers from verl's non-tensor batch → plain Python."""
    if hasattr(value, "_content") or type(value).__name__ in {"DictConfig", "ListConfig"}:
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _plain(value.tolist())
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class RLExtraInfo(BaseModel):
    """The ``extra_info`` column of an RL row: what the agent loop, trainer and scorer read.

    Reading (:meth:`read`) ignores keys it does not know, because verl merges the rollout's extra
    fields, ``num_turns`` and reward scores into the same mapping before the scorer sees it.
    Scorer options (``choices``, ``rel_tol``, ``gold_csv``...) are per-row and optional.
    """

    model_config = ConfigDict(extra="forbid")

    index: int = 0
    task_id: str = ""
    question: str = ""
    files: list[str] = Field(default_factory=list, description="data files, absolute paths")
    task_kind: str | None = Field(None, description="the scorer to use: a TaskKind or a user-registered name")
    category: str = ""
    difficulty: int = 0
    difficulty_label: str = ""
    file_format: str = ""
    source: str = ""
    expert_messages: list[Message] | None = Field(None, description="the expert trajectory for the SFT term")
    # scorer options
    choices: list[str] | None = None
    rel_tol: float | None = None
    table_abs_tol: float | None = None
    ordered: bool = False
    require_code: bool | None = None
    void_score: float | None = None
    session_dir: str | None = None
    result_csv_path: str | None = None
    gold_csv: str | None = None
    gold_sql: str | None = None
    db_path: str | None = None

    @classmethod
    def read(cls, extra_info: Any) -> RLExtraInfo:
        """The known keys of a stored ``extra_info`` (a dict, a JSON string, numpy values...)."""
        data = _plain(extra_info)
        if isinstance(data, str):
            data = json.loads(data) if data.strip() else {}
        if not isinstance(data, Mapping):
            return cls()
        known = {k: v for k, v in data.items() if k in cls.model_fields and v is not None}
        messages = known.get("expert_messages")
        if isinstance(messages, str):
            known["expert_messages"] = json.loads(messages) if messages.strip() else None
        if isinstance(known.get("files"), str):
            known["files"] = [known["files"]]
        try:
            return cls.model_validate(known)
        except ValidationError as err:  # a malformed value drops that key only: readers are total
            bad = {e["loc"][0] for e in err.errors() if e["loc"]}
            return cls.model_validate({k: v for k, v in known.items() if k not in bad})

    def expert(self) -> list[dict[str, str]] | None:
        """The expert trajectory as plain messages, or None when the row has none."""
        if not self.expert_messages:
            return None
        return [m.model_dump() for m in self.expert_messages]


class RewardModelColumn(BaseModel):
    """verl's ``reward_model`` column: the ground truth the scorer compares with."""

    model_config = ConfigDict(extra="forbid")

    ground_truth: str = ""
    style: Literal["rule", "model"] = "rule"


class RLRow(BaseModel):
    """One row of the RL parquet, in the column layout verl's RL dataset reads."""

    model_config = ConfigDict(extra="forbid")

    prompt: list[Message]
    data_source: str
    ability: str
    reward_model: RewardModelColumn
    extra_info: RLExtraInfo
    agent_name: str

    def to_row(self) -> dict[str, Any]:
        """The plain dict written to parquet (unset scorer options left out, not stored as nulls)."""
        row = self.model_dump()
        row["extra_info"] = self.extra_info.model_dump(exclude_none=True)
        return row


@dataclass
class RolloutExtraFields:
    """What our agent loop returns per trajectory in verl's ``extra_fields`` (same keys every time).

    verl stores these per row in TransferQueue and merges them into the scorer's ``extra_info``;
    ``min_global_steps`` / ``max_global_steps`` are read by verl's v1 trainer (staleness metrics),
    ``turn_scores`` / ``tool_rewards`` are what verl's built-in loops set (so rows of both mix).
    """

    dm_turns: int = 0
    dm_code_cells: int = 0
    dm_cells_errored: int = 0
    dm_cells_timed_out: int = 0
    dm_obs_chars_cut: int = 0
    dm_void: int = 0
    dm_failed: int = 0
    dm_generation_s: float = 0.0
    dm_interpreter_s: float = 0.0
    dm_overhead_s: float = 0.0
    min_global_steps: int = -1
    max_global_steps: int = -1
    turn_scores: list[float] = field(default_factory=list)
    tool_rewards: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def is_void(extra: Any) -> bool:
        """The void flag of a rollout's extra fields (or a scorer ``extra_info`` they were merged into)."""
        if not isinstance(extra, Mapping):
            return False
        value = extra.get(VOID_FIELD)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        try:
            return bool(value)
        except Exception:  # noqa: BLE001 - an array-like of unknown truth value is not a flag
            return False


#: Our own per-trajectory numbers (the ``dm_*`` keys), in order.
ROLLOUT_EXTRA_KEYS: tuple[str, ...] = tuple(f.name for f in fields(RolloutExtraFields) if f.name.startswith("dm_"))
assert VOID_FIELD in ROLLOUT_EXTRA_KEYS

"""Scoring one trajectory end to end: the task kind's scorer, the format check, the composite reward.

This is what the verl entry point calls, but it has no verl import: the inputs are verl's
``compute_score`` arguments as plain values. The kind is ``extra_info.task_kind`` (the export
writes it), else ``reward.kind_by_data_source[data_source]`` (an exact name, never a substring),
else ``reward.default_kind``; its scorer comes from the registry in ``scorers.py``. Per-sample
options are fields of :class:`~datamind_ext.records.RLExtraInfo` (``question``, ``choices``,
``rel_tol``, ``ordered``, ``require_code``, ``void_score``, SQL's ``session_dir`` /
``result_csv_path`` / ``gold_csv`` / ``gold_sql`` + ``db_path``); the rollout's void flag is
``dm_void`` (:data:`~datamind_ext.records.VOID_FIELD`).

One async core, :func:`score_sample_async`; :func:`score_sample` is its synchronous wrapper (a
per-thread event loop, so a shared judge client keeps its connections).

``ground_truth`` may be the answer text, or DataMind's nested ``{"ground_truth": ..., "task_id": ...}``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import Field, model_validator

from datamind_ext.config import StrictModel
from datamind_ext.errors import UserError
from datamind_ext.records import TASK_KINDS, RLExtraInfo, RolloutExtraFields
from datamind_ext.rewards.composite import (
    RewardConfig,
    answer_length,
    composite_score,
    result_dict,
)
from datamind_ext.rewards.format_score import score_format
from datamind_ext.rewards.judge import JudgeClient, JudgeConfig, JudgeUnavailableError
from datamind_ext.rewards.result import MatchResult
from datamind_ext.rewards.scorers import (
    SCORERS,
    Decision,
    Sample,
    ScoreContext,
    load_scorer,
)
from datamind_ext.rewards.values import as_text

log = logging.getLogger("datamind_ext.rewards")


class ScoringConfig(StrictModel):
    """The whole reward block: the composite's numbers, the judge, and user scorers by name."""

    reward: RewardConfig = Field(default_factory=RewardConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    #: Task kinds whose responses must contain at least one code block.
    require_code_kinds: list[str] = Field(default_factory=lambda: ["file_qa", "dabench", "choice", "judged"])
    #: User scorers: task kind -> import path of a ``scorer(sample, ctx) -> Decision`` function.
    scorers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _kinds_have_scorers(self) -> ScoringConfig:
        for name, path in self.scorers.items():
            load_scorer(name, path)
        used = {self.reward.default_kind, *self.reward.kind_by_data_source.values()}
        unknown = sorted(k for k in used if k not in SCORERS)
        if unknown:
            raise ValueError(f"no scorer for task kind(s) {unknown}; built in: {list(TASK_KINDS)}, "
                             f"or name one under scorers")
        return self


@dataclass
class RewardResult:
    """One sample's reward: the fixed-key float dict verl logs, plus a readable reason."""

    values: dict[str, float]
    reason: str
    kind: str

    @property
    def score(self) -> float:
        return self.values["score"]


def resolve_kind(data_source: object, info: RLExtraInfo, cfg: RewardConfig) -> str:
    """The task kind: ``extra_info.task_kind``, then the exact data_source name, then the default."""
    if info.task_kind:
        return info.task_kind
    return cfg.kind_by_data_source.get(as_text(data_source), cfg.default_kind)


def _gold(ground_truth: object) -> tuple[str, Any]:
    obj = ground_truth
    if isinstance(obj, Mapping) and "ground_truth" in obj:
        obj = obj["ground_truth"]
    if isinstance(obj, (str, bytes)) or obj is None:
        return as_text(obj), as_text(obj)
    return as_text(obj), obj


def _finish(kind: str, answer: str, fmt_ok: bool, fmt_reason: str, info: RLExtraInfo, void: bool,
            decision: Decision, cfg: ScoringConfig, tokenizer: Any) -> RewardResult:
    match, excluded = decision.match, decision.excluded
    length = answer_length(answer, cfg.reward.length, tokenizer) if match.correct else len(answer)
    score, lf = composite_score(correct=match.correct, format_ok=fmt_ok, length=length, cfg=cfg.reward)
    reason = f"{fmt_reason};{match.reason}"
    if excluded:
        score = cfg.reward.excluded_score
        reason += ";excluded"
    if void:
        void_score = info.void_score if info.void_score is not None else cfg.reward.void_score
        if void_score is not None:
            score = float(void_score)
        reason += ";void"
    values = result_dict(
        score=score,
        acc=match.correct and not excluded,
        format_ok=fmt_ok,
        length_factor=lf,
        answer_len=length,
        judged=decision.judged,
        judge_unreachable=decision.judge_unreachable,
        excluded=excluded,
        void=void,
        mask_out=void or excluded,
    )
    return RewardResult(values, reason, kind)


async def score_sample_async(
    data_source: object,
    solution_str: object,
    ground_truth: object,
    extra_info: object = None,
    *,
    config: ScoringConfig | None = None,
    tokenizer: Any = None,
    judge: JudgeClient | None = None,
) -> RewardResult:
    """Score one trajectory (the judge, when the kind's scorer uses one, is awaited).

    An unknown task kind is a :class:`UserError` and an unreachable judge under policy ``error``
    raises; any other scorer failure is logged and the sample is excluded (never a dead step).
    """
    cfg = config or ScoringConfig()
    raw = extra_info if isinstance(extra_info, Mapping) else {}
    info = RLExtraInfo.read(raw)
    kind = resolve_kind(data_source, info, cfg.reward)
    scorer = SCORERS.get(kind)
    try:
        require_code = info.require_code if info.require_code is not None else kind in cfg.require_code_kinds
        fmt = score_format(solution_str, require_code=require_code)
        answer = fmt.answer or ""
        void = RolloutExtraFields.is_void(raw)
        if not answer:
            decision = Decision(MatchResult(False, "no_answer"))
        elif len(answer) > cfg.reward.max_answer_chars:
            decision = Decision(MatchResult(False, "answer_too_long"))
        else:
            gold, gold_obj = _gold(ground_truth)
            out = scorer(Sample(kind, answer, gold, gold_obj, info, raw), ScoreContext(cfg, judge, tokenizer))
            decision = await out if inspect.isawaitable(out) else out
        return _finish(kind, answer, fmt.ok, fmt.reason, info, void, decision, cfg, tokenizer)
    except (JudgeUnavailableError, UserError):
        raise
    except Exception as err:  # a scorer bug must not kill a training step: logged, sample excluded
        log.exception("reward scoring failed")
        return _error_result(cfg, err)


_local = threading.local()
_helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="datamind-score")


def _thread_loop() -> asyncio.AbstractEventLoop:
    loop = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    return loop


def _awaits(data_source: object, extra_info: object, cfg: ScoringConfig) -> bool:
    """Whether the sample's scorer is a coroutine function (then the core needs an event loop)."""
    raw = extra_info if isinstance(extra_info, Mapping) else {}
    kind = raw.get("task_kind") if isinstance(raw.get("task_kind"), str) and raw.get("task_kind") else None
    kind = kind or cfg.reward.kind_by_data_source.get(as_text(data_source), cfg.reward.default_kind)
    return kind not in SCORERS or inspect.iscoroutinefunction(SCORERS.get(kind))


def score_sample(
    data_source: object,
    solution_str: object,
    ground_truth: object,
    extra_info: object = None,
    *,
    config: ScoringConfig | None = None,
    tokenizer: Any = None,
    judge: JudgeClient | None = None,
) -> RewardResult:
    """:func:`score_sample_async` for synchronous callers (verl runs sync scorers in a thread pool).

    With a synchronous scorer the core never suspends, so it is run to completion directly; an
    async scorer (the judge) runs on this thread's event loop, or on a private thread when the
    caller is itself inside a running loop.
    """
    cfg = config or ScoringConfig()

    def core():
        return score_sample_async(data_source, solution_str, ground_truth, extra_info,
                                  config=cfg, tokenizer=tokenizer, judge=judge)

    if not _awaits(data_source, extra_info, cfg):
        coro = core()
        try:
            coro.send(None)
        except StopIteration as done:
            return done.value
        coro.close()
        raise RuntimeError("a synchronous scorer returned an awaitable; make it an async def")

    def run() -> RewardResult:
        return _thread_loop().run_until_complete(core())

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    return _helper.submit(run).result()


def _error_result(cfg: ScoringConfig, err: Exception) -> RewardResult:
    values = result_dict(score=cfg.reward.excluded_score, excluded=True, mask_out=True)
    return RewardResult(values, f"scorer_error:{type(err).__name__}", "error")

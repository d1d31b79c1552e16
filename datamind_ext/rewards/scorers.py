"""The scorer registry: one scorer per task kind, keyed by the ``task_kind`` the export writes.

A scorer decides whether one answer is right: ``scorer(sample, ctx) -> Decision`` (or an awaitable
of one). The format check, the length penalty, the composite reward and the void flag are the
same for every kind and stay in ``scoring.py``. Built-in kinds are :data:`~datamind_ext.records.TaskKind`.
Users add a kind by name, as they would a verl reward function: decorate with
``@SCORERS.register("my_kind")``, or name it in the reward config
(``scorers: {my_kind: my_pkg.my_module.my_scorer}``), and write ``task_kind: my_kind`` in the rows.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datamind_ext.errors import UserError
from datamind_ext.records import RLExtraInfo
from datamind_ext.registry import Registry
from datamind_ext.rewards.dabench import match_dabench
from datamind_ext.rewards.judge import JudgeClient, JudgeUnavailableError
from datamind_ext.rewards.match import match_answer, match_choice
from datamind_ext.rewards.result import MatchResult
from datamind_ext.rewards.tables import compare_result_file, compare_tables, run_sql_rows
from datamind_ext.rewards.values import as_text

if TYPE_CHECKING:
    from datamind_ext.rewards.scoring import ScoringConfig

log = logging.getLogger("datamind_ext.rewards")
_CSV_NAME_RE = re.compile(r"""[`'"]([^`'"\n]{1,200}?\.csv)[`'"]|([\w\-./]{1,200}\.csv)\b""", re.IGNORECASE)


@dataclass(frozen=True)
class Sample:
    """One trajectory to score, as the scorers see it."""

    kind: str
    answer: str  # the content of <answer> (non-empty and within max_answer_chars)
    gold: str  # the ground truth as text
    gold_obj: Any  # the ground truth as given (a list / dict stays one)
    info: RLExtraInfo  # the row's extra_info (per-sample scorer options)
    raw_extra: Mapping[str, Any]  # the whole extra_info, for user scorers with their own keys


@dataclass(frozen=True)
class Decision:
    """A scorer's verdict on one sample."""

    match: MatchResult
    judged: bool = False
    judge_unreachable: bool = False
    excluded: bool = False


@dataclass
class ScoreContext:
    """What a scorer may use besides the sample."""

    config: ScoringConfig
    judge: JudgeClient | None = None
    tokenizer: Any = None


Scorer = Callable[[Sample, ScoreContext], "Decision | Awaitable[Decision]"]
SCORERS: Registry[Scorer] = Registry("scorer (task_kind)")


def load_scorer(name: str, path: str) -> None:
    """Register the function at import path ``module.function`` (or ``module:function``) as ``name``."""
    module, _, attr = path.replace(":", ".").rpartition(".")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise UserError(f"reward.scorers.{name}: cannot import {path!r} ({type(err).__name__}: {err})") from None
    if not callable(fn):
        raise UserError(f"reward.scorers.{name}: {path!r} is not a function")
    SCORERS.register(name)(fn)


def _rel_tol(s: Sample, ctx: ScoreContext) -> float:
    return s.info.rel_tol if s.info.rel_tol is not None else ctx.config.reward.rel_tol


@SCORERS.register("file_qa")
def score_file_qa(s: Sample, ctx: ScoreContext) -> Decision:
    """Rule-based matching of a free-form answer (numbers within ``rel_tol``, lists, dates...)."""
    gold = s.gold_obj if not isinstance(s.gold_obj, str) else s.gold
    return Decision(match_answer(s.answer, gold, rel_tol=_rel_tol(s, ctx), ordered=s.info.ordered))


@SCORERS.register("dabench")
def score_dabench(s: Sample, ctx: ScoreContext) -> Decision:
    """DABench ``@name[value]`` answers: every sub-answer must match (training tolerance)."""
    return Decision(match_dabench(s.answer, s.gold_obj, official=False, rel_tol=_rel_tol(s, ctx)))


@SCORERS.register("choice")
def score_choice(s: Sample, ctx: ScoreContext) -> Decision:
    """Multiple choice by option letter or text (``extra_info.choices``); free-form without choices."""
    if s.info.choices:
        return Decision(match_choice(s.answer, s.gold, [as_text(c) for c in s.info.choices]))
    return score_file_qa(s, ctx)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError):
        return False


def _sql_match(s: Sample, ctx: ScoreContext) -> MatchResult:
    info = s.info
    tol = info.table_abs_tol if info.table_abs_tol is not None else ctx.config.reward.table_abs_tol
    # The prediction: this trajectory's own result file, never a shared folder.
    if info.result_csv_path:
        pred_path = Path(info.result_csv_path)
    else:
        if not info.session_dir:
            return MatchResult(False, "sql_no_session_dir")
        names = [a or b for a, b in _CSV_NAME_RE.findall(s.answer)]
        if not names:
            return MatchResult(False, "sql_no_result_csv_named")
        root = Path(info.session_dir)
        pred_path = root / names[-1].strip()
        if not _inside(pred_path, root):
            return MatchResult(False, "sql_result_outside_session")
    if info.gold_csv:
        return compare_tables(pred_path, info.gold_csv, abs_tol=tol)
    if info.gold_sql and info.db_path:
        try:
            gold_rows = run_sql_rows(info.db_path, info.gold_sql)
        except Exception as err:  # noqa: BLE001
            return MatchResult(False, f"gold_sql_failed:{type(err).__name__}")
        return compare_result_file(pred_path, gold_rows, abs_tol=tol)
    return MatchResult(False, "sql_no_gold")


@SCORERS.register("sql")
def score_sql(s: Sample, ctx: ScoreContext) -> Decision:
    """SQL tasks: the result CSV in this trajectory's session dir against the gold table or gold SQL."""
    return Decision(_sql_match(s, ctx))


@SCORERS.register("judged")
async def score_judged(s: Sample, ctx: ScoreContext) -> Decision:
    """The LLM judge; when it gives no verdict, ``judge.on_unreachable`` decides (error / exclude / rules)."""
    client = ctx.judge or JudgeClient(ctx.config.judge)
    try:
        verdict = await client.judge(s.info.question, s.gold, s.answer)
    finally:
        if ctx.judge is None:
            await client.aclose()  # a one-off client: close its HTTP session now
    if verdict.decided:
        ok = bool(verdict.score and verdict.score >= 0.5)
        return Decision(MatchResult(ok, f"judge_{verdict.status}"), judged=True)
    policy = ctx.config.judge.on_unreachable
    log.warning("judge gave no verdict (%s: %s); policy %s", verdict.status, verdict.detail, policy)
    if policy == "error":
        raise JudgeUnavailableError(f"judge {verdict.status}: {verdict.detail}")
    if policy == "exclude":
        return Decision(MatchResult(False, f"judge_{verdict.status}"), judge_unreachable=True, excluded=True)
    m = score_file_qa(s, ctx).match
    return Decision(MatchResult(m.correct, f"judge_{verdict.status}_fallback:{m.reason}"), judge_unreachable=True)

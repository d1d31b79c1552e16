"""Scoring one trajectory end to end: route by task kind, check format, match or judge, combine.

This is what the verl entry point calls, but it has no verl import: the inputs are verl's
``compute_score`` arguments as plain values. Per-sample options come from ``extra_info``:

* ``task_kind``: force the kind: file_qa, dabench, choice, sql, judged
* ``question``: the question text (sent to the judge)
* ``choices``: option texts of a multiple-choice question (letter order)
* ``rel_tol``: numeric tolerance of this sample; ``ordered``: lists in order
* ``require_code``: whether the response must contain a code block
* ``void`` / ``dm_void``: the rollout flagged the trajectory void (``is_valid_trajectory=0`` too)
* ``void_score``: the score the rollout wants for this void trajectory
* ``session_dir``: SQL: this trajectory's own session directory holding its result CSV
* ``result_csv_path``: SQL: the result CSV path itself (instead of a name in the answer)
* ``gold_csv``: SQL: the gold result CSV; or ``gold_sql`` + ``db_path``

``ground_truth`` may be the answer text, or DataMind's nested ``{"ground_truth": ..., "task_id": ...}``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from datamind_ext.config import StrictModel
from datamind_ext.rewards.composite import RewardConfig, answer_length, composite_score, result_dict
from datamind_ext.rewards.dabench import match_dabench
from datamind_ext.rewards.format_score import score_format
from datamind_ext.rewards.judge import JudgeClient, JudgeConfig, JudgeUnavailableError, Verdict
from datamind_ext.rewards.match import MatchResult, match_answer, match_choice
from datamind_ext.rewards.tables import compare_rows, compare_tables, read_csv_rows, run_sql_rows
from datamind_ext.rewards.values import as_text

log = logging.getLogger("datamind_ext.rewards")

KINDS = ("file_qa", "dabench", "choice", "sql", "judged")
_CSV_NAME_RE = re.compile(r"""[`'"]([^`'"\n]{1,200}?\.csv)[`'"]|([\w\-./]{1,200}\.csv)\b""", re.IGNORECASE)


class ScoringConfig(StrictModel):
    """The whole reward block: the composite's numbers and the judge."""

    reward: RewardConfig = Field(default_factory=RewardConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    #: Task kinds whose responses must contain at least one code block.
    require_code_kinds: list[str] = Field(default_factory=lambda: ["file_qa", "dabench", "choice", "judged"])


@dataclass
class RewardResult:
    """One sample's reward: the fixed-key float dict verl logs, plus a readable reason."""

    values: dict[str, float]
    reason: str
    kind: str

    @property
    def score(self) -> float:
        return self.values["score"]


@dataclass
class _Prepared:
    kind: str
    answer: str
    gold: str
    gold_obj: Any
    extra: Mapping[str, Any]
    format_ok: bool
    format_reason: str
    void: bool
    done: RewardResult | None = None
    notes: list[str] = field(default_factory=list)


def resolve_kind(data_source: object, extra_info: Mapping[str, Any], cfg: RewardConfig) -> str:
    """The task kind: ``extra_info.task_kind``, then configured routes, then built-in name rules."""
    forced = extra_info.get("task_kind")
    if isinstance(forced, str) and forced in KINDS:
        return forced
    ds = as_text(data_source).lower()
    for pattern, kind in cfg.routes.items():
        if pattern.lower() in ds:
            return kind
    if "sql" in ds or "bird" in ds or "spider" in ds:
        return "sql"
    if "dabench" in ds or "da-bench" in ds or "infiagent" in ds:
        return "dabench"
    if extra_info.get("choices"):
        return "choice"
    if "judge" in ds or "open" in ds:
        return "judged"
    return cfg.default_kind


def _gold(ground_truth: object) -> tuple[str, Any]:
    obj = ground_truth
    if isinstance(obj, Mapping) and "ground_truth" in obj:
        obj = obj["ground_truth"]
    if isinstance(obj, (str, bytes)) or obj is None:
        return as_text(obj), as_text(obj)
    return as_text(obj), obj


#: extra_info keys through which a rollout flags a void trajectory (``dm_void``: our agent loop's
#: extra_fields, which verl merges into extra_info; ``void``: any other rollout).
VOID_KEYS = ("void", "dm_void")


def _is_void(extra: Mapping[str, Any]) -> bool:
    for key in VOID_KEYS:
        v = extra.get(key)
        if v is None or (isinstance(v, float) and v != v):
            continue
        try:
            if bool(v):
                return True
        except Exception:  # noqa: BLE001
            continue
    valid = extra.get("is_valid_trajectory")
    return valid is not None and valid in (0, False, 0.0)


def _prepare(
    data_source: object, solution_str: object, ground_truth: object, extra_info: object, cfg: ScoringConfig
) -> _Prepared:
    extra: Mapping[str, Any] = extra_info if isinstance(extra_info, Mapping) else {}
    kind = resolve_kind(data_source, extra, cfg.reward)
    require_code = extra.get("require_code")
    if require_code is None:
        require_code = kind in cfg.require_code_kinds
    fmt = score_format(solution_str, require_code=bool(require_code))
    gold_text, gold_obj = _gold(ground_truth)
    return _Prepared(
        kind=kind,
        answer=fmt.answer or "",
        gold=gold_text,
        gold_obj=gold_obj,
        extra=extra,
        format_ok=fmt.ok,
        format_reason=fmt.reason,
        void=_is_void(extra),
    )


def _float_opt(extra: Mapping[str, Any], key: str, default: float) -> float:
    try:
        v = float(extra.get(key, default))
        return v if v == v else default
    except (TypeError, ValueError):
        return default


def rule_match(p: _Prepared, cfg: ScoringConfig) -> MatchResult:
    """The rule-based decision for kinds that need no judge (and the judge's fallback)."""
    rel_tol = _float_opt(p.extra, "rel_tol", cfg.reward.rel_tol)
    if not p.answer:
        return MatchResult(False, "no_answer")
    if len(p.answer) > cfg.reward.max_answer_chars:
        return MatchResult(False, "answer_too_long")
    if p.kind == "sql":
        return _sql_match(p, cfg)
    if p.kind == "dabench":
        return match_dabench(p.answer, p.gold_obj, official=False, rel_tol=rel_tol)
    choices = p.extra.get("choices")
    if p.kind == "choice" and choices:
        return match_choice(p.answer, p.gold, [as_text(c) for c in choices])
    gold = p.gold_obj if not isinstance(p.gold_obj, str) else p.gold
    return match_answer(p.answer, gold, rel_tol=rel_tol, ordered=bool(p.extra.get("ordered", False)))


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError):
        return False


def _sql_match(p: _Prepared, cfg: ScoringConfig) -> MatchResult:
    extra = p.extra
    tol = _float_opt(extra, "table_abs_tol", cfg.reward.table_abs_tol)
    # The prediction: this trajectory's own result file, never a shared folder.
    pred_path: Path | None = None
    if extra.get("result_csv_path"):
        pred_path = Path(as_text(extra["result_csv_path"]))
    else:
        session = extra.get("session_dir")
        if not session:
            return MatchResult(False, "sql_no_session_dir")
        names = [a or b for a, b in _CSV_NAME_RE.findall(p.answer)]
        if not names:
            return MatchResult(False, "sql_no_result_csv_named")
        root = Path(as_text(session))
        pred_path = root / names[-1].strip()
        if not _inside(pred_path, root):
            return MatchResult(False, "sql_result_outside_session")
    gold_csv = extra.get("gold_csv")
    if gold_csv:
        return compare_tables(pred_path, as_text(gold_csv), abs_tol=tol)
    if extra.get("gold_sql") and extra.get("db_path"):
        try:
            gold_rows = run_sql_rows(as_text(extra["db_path"]), as_text(extra["gold_sql"]))
        except Exception as err:  # noqa: BLE001
            return MatchResult(False, f"gold_sql_failed:{type(err).__name__}")
        try:
            pred_rows = read_csv_rows(pred_path)
        except FileNotFoundError:
            return MatchResult(False, "result_file_missing")
        except Exception as err:  # noqa: BLE001
            return MatchResult(False, f"result_unreadable:{type(err).__name__}")
        return compare_rows(pred_rows, gold_rows, abs_tol=tol)
    return MatchResult(False, "sql_no_gold")


def _finish(
    p: _Prepared,
    match: MatchResult,
    cfg: ScoringConfig,
    tokenizer: Any,
    *,
    judged: bool = False,
    unreachable: bool = False,
    excluded: bool = False,
) -> RewardResult:
    length = answer_length(p.answer, cfg.reward.length, tokenizer) if match.correct else len(p.answer)
    score, lf = composite_score(correct=match.correct, format_ok=p.format_ok, length=length, cfg=cfg.reward)
    reason = f"{p.format_reason};{match.reason}"
    if excluded:
        score = cfg.reward.excluded_score
        reason += ";excluded"
    if p.void:
        void_score = p.extra.get("void_score", cfg.reward.void_score)
        if void_score is not None:
            try:
                score = float(void_score)
            except (TypeError, ValueError):
                pass
        reason += ";void"
    values = result_dict(
        score=score,
        acc=match.correct and not excluded,
        format_ok=p.format_ok,
        length_factor=lf,
        answer_len=length,
        judged=judged,
        judge_unreachable=unreachable,
        excluded=excluded,
        void=p.void,
        mask_out=p.void or excluded,
    )
    return RewardResult(values, reason, p.kind)


def _after_verdict(p: _Prepared, verdict: Verdict, cfg: ScoringConfig, tokenizer: Any) -> RewardResult:
    if verdict.decided:
        ok = bool(verdict.score and verdict.score >= 0.5)
        return _finish(p, MatchResult(ok, f"judge_{verdict.status}"), cfg, tokenizer, judged=True)
    policy = cfg.judge.on_unreachable
    log.warning("judge gave no verdict (%s: %s); policy %s", verdict.status, verdict.detail, policy)
    if policy == "error":
        raise JudgeUnavailableError(f"judge {verdict.status}: {verdict.detail}")
    if policy == "exclude":
        return _finish(p, MatchResult(False, f"judge_{verdict.status}"), cfg, tokenizer, unreachable=True, excluded=True)
    m = rule_match(p, cfg)
    return _finish(p, MatchResult(m.correct, f"judge_{verdict.status}_fallback:{m.reason}"), cfg, tokenizer, unreachable=True)


def _needs_judge(p: _Prepared, cfg: ScoringConfig) -> bool:
    return p.kind == "judged" and bool(p.answer) and len(p.answer) <= cfg.reward.max_answer_chars


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
    """Score one trajectory synchronously (judged kinds block on the judge)."""
    cfg = config or ScoringConfig()
    try:
        p = _prepare(data_source, solution_str, ground_truth, extra_info, cfg)
        if _needs_judge(p, cfg):
            client = judge or JudgeClient(cfg.judge)
            verdict = client.judge_sync(as_text(p.extra.get("question", "")), p.gold, p.answer)
            return _after_verdict(p, verdict, cfg, tokenizer)
        return _finish(p, rule_match(p, cfg), cfg, tokenizer)
    except JudgeUnavailableError:
        raise
    except Exception as err:  # a scorer bug must not kill a training step: logged, sample excluded
        log.exception("reward scoring failed")
        return _error_result(cfg, err)


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
    """Score one trajectory on the running event loop (the judge call is awaited, not blocking)."""
    cfg = config or ScoringConfig()
    try:
        p = _prepare(data_source, solution_str, ground_truth, extra_info, cfg)
        if _needs_judge(p, cfg):
            client = judge or JudgeClient(cfg.judge)
            try:
                verdict = await client.judge(as_text(p.extra.get("question", "")), p.gold, p.answer)
            finally:
                if judge is None:
                    await client.aclose()  # a one-off client: close its HTTP session now
            return _after_verdict(p, verdict, cfg, tokenizer)
        return _finish(p, rule_match(p, cfg), cfg, tokenizer)
    except JudgeUnavailableError:
        raise
    except Exception as err:  # a scorer bug must not kill a training step: logged, sample excluded
        log.exception("reward scoring failed")
        return _error_result(cfg, err)


def _error_result(cfg: ScoringConfig, err: Exception) -> RewardResult:
    values = result_dict(score=cfg.reward.excluded_score, excluded=True, mask_out=True)
    return RewardResult(values, f"scorer_error:{type(err).__name__}", "error")

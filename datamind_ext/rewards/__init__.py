"""Data-analytic rewards: pure scoring functions (no verl import), used by RL, synthesis and eval.

Stable API (other packages build on these; signatures only grow keyword arguments):

``match_answer(pred, gold, *, rel_tol=0.03, abs_tol=1e-9, ordered=False, choices=None) -> MatchResult``
    Rule-based answer matching. Numbers within ``rel_tol`` (percent vs fraction, thousands
    separators, signs, scientific notation, units and currency stripped), booleans / yes-no,
    dates, case- and whitespace-insensitive strings, lists/sets/dicts element-wise
    (order-insensitive unless ``ordered``),
    multiple choice when ``choices`` (option texts in letter order) is given. DABench answers are
    the ``dabench`` scorer's (``match_dabench``), not the generic matcher's.
``match_dabench(pred, gold, *, official, rel_tol=0.03) -> MatchResult``
    ``official=True`` is the benchmark's own rule (exact string or floats within 1e-6, every
    gold ``@name[value]`` must match); ``official=False`` uses :func:`match_answer` per sub-answer.
``match_choice(pred, gold, choices) -> MatchResult``
    Multiple choice by option letter or option text.
``compare_tables(pred_csv_path, gold_csv_path, *, abs_tol=1e-2) -> MatchResult``
    SQL result tables: row order ignored, each gold column must equal some predicted column.
    ``compare_rows`` does the same on in-memory rows; ``run_sql_rows`` runs gold SQL read-only.

``score_format(response, *, require_code=True) -> FormatResult(ok, violations, answer, n_code)``
    The format check on the one protocol parser.
``score_sample_async(data_source, solution_str, ground_truth, extra_info, *, config, tokenizer, judge)``
    (and its synchronous wrapper ``score_sample``) one trajectory end to end: the scorer of the
    row's ``task_kind`` (registry ``SCORERS``; add one with ``@SCORERS.register(name)`` or
    ``ScoringConfig.scorers``), format, composite reward -> ``RewardResult(values, reason, kind)``;
    ``values`` always has the keys ``RESULT_KEYS``. ``ScoringConfig(reward=..., judge=...)``.
``JudgeClient(JudgeConfig)``: ``await judge(question, reference, answer) -> Verdict``.

``MatchResult(correct: bool, reason: str)`` is truthy when correct; ``reason`` names the rule.
Every function here is total: any input (empty, huge, binary, NaN) gives a result, never raises.
"""

from datamind_ext.rewards.composite import RESULT_KEYS, LengthPenaltyConfig, RewardConfig, length_factor
from datamind_ext.rewards.dabench import match_dabench, parse_sub_answers, sub_answer_correctness
from datamind_ext.rewards.format_score import FormatResult, score_format
from datamind_ext.rewards.judge import JudgeClient, JudgeConfig, JudgeUnavailableError, Verdict
from datamind_ext.rewards.match import choice_index, match_answer, match_choice, numbers_match
from datamind_ext.rewards.result import MatchResult
from datamind_ext.rewards.scorers import SCORERS, Decision, Sample, ScoreContext
from datamind_ext.rewards.scoring import RewardResult, ScoringConfig, resolve_kind, score_sample, score_sample_async
from datamind_ext.rewards.tables import compare_rows, compare_tables, read_csv_rows, run_sql_rows

__all__ = [
    "RESULT_KEYS",
    "SCORERS",
    "Decision",
    "FormatResult",
    "JudgeClient",
    "JudgeConfig",
    "JudgeUnavailableError",
    "LengthPenaltyConfig",
    "MatchResult",
    "RewardConfig",
    "RewardResult",
    "Sample",
    "ScoreContext",
    "ScoringConfig",
    "Verdict",
    "choice_index",
    "compare_rows",
    "compare_tables",
    "length_factor",
    "match_answer",
    "match_choice",
    "match_dabench",
    "numbers_match",
    "parse_sub_answers",
    "read_csv_rows",
    "resolve_kind",
    "run_sql_rows",
    "score_format",
    "score_sample",
    "score_sample_async",
    "sub_answer_correctness",
]

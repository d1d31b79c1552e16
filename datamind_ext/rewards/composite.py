"""The composite reward (paper Eq. 8) with every number configurable, and its fixed output keys.

    correct answer          -> correct_reward x length_factor(answer length)
    wrong, format valid     -> wrong_reward            (paper: 0)
    format invalid          -> format_penalty          (paper: -0.1), unless the answer is correct

``length_factor`` is 1 up to ``length.min_len``, falls linearly to ``length.floor`` at
``length.max_len`` and stays there (paper: 256 / 1,024 / 0.5). The length is counted in tokens
when a tokenizer is given, else in characters (what the reference code really did).

verl takes the list of extra-info keys from the first sample of a batch, so every result here
has exactly the keys in :data:`RESULT_KEYS`, whatever happened to the sample.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from datamind_ext.config import StrictModel

#: Keys of every reward dict, in order (``score`` first; all values are floats).
RESULT_KEYS: tuple[str, ...] = (
    "score",
    "acc",  # 1.0 if the answer was judged correct (verl's validation reads "acc")
    "format_ok",
    "length_factor",
    "answer_len",
    "judged",  # 1.0 if an LLM judge decided
    "judge_unreachable",  # 1.0 if the judge could not be reached and the fallback policy applied
    "excluded",  # 1.0 if the sample must not count (judge unreachable, policy "exclude")
    "void",  # 1.0 if the rollout flagged the trajectory void (no answer / turn budget exhausted)
    "mask_out",  # 1.0 if the trainer should drop the sample's tokens from the loss (void or excluded)
)


class LengthPenaltyConfig(StrictModel):
    """Answer-length penalty on correct answers."""

    min_len: int = Field(256, ge=0)
    max_len: int = Field(1024, ge=1)
    floor: float = Field(0.5, ge=0.0, le=1.0)
    #: "auto": tokens when a tokenizer is available, else characters.
    unit: Literal["auto", "tokens", "chars"] = "auto"


class RewardConfig(StrictModel):
    """Every number of the data-analytic reward; defaults are the paper's."""

    correct_reward: float = 1.0
    wrong_reward: float = 0.0
    format_penalty: float = -0.1
    length: LengthPenaltyConfig = Field(default_factory=LengthPenaltyConfig)
    #: Relative tolerance of numeric answers (paper's judge rule: 3 %).
    rel_tol: float = Field(0.03, ge=0.0)
    #: Absolute tolerance of SQL result-table cells (BIRD / Spider2 rule).
    table_abs_tol: float = Field(1e-2, ge=0.0)
    #: Answers longer than this many characters are wrong without matching (reference: 10,240).
    max_answer_chars: int = Field(10_240, ge=1)
    #: Score given to a sample excluded by the judge policy; it is also flagged ``excluded``.
    excluded_score: float = 0.0
    #: Score of a void trajectory when the rollout gives none (None: score it normally, as the paper).
    void_score: float | None = None
    #: Exact data_source name -> task kind, for rows without ``extra_info.task_kind``.
    kind_by_data_source: dict[str, str] = Field(default_factory=dict)
    #: Task kind (a registered scorer) when neither the row nor ``kind_by_data_source`` says.
    default_kind: str = "file_qa"


def length_factor(length: int, cfg: LengthPenaltyConfig) -> float:
    """1 up to ``min_len``, linear down to ``floor`` at ``max_len``, ``floor`` beyond."""
    if length <= cfg.min_len:
        return 1.0
    if length >= cfg.max_len or cfg.max_len <= cfg.min_len:
        return cfg.floor
    return cfg.floor + (1.0 - cfg.floor) * (cfg.max_len - length) / (cfg.max_len - cfg.min_len)


def answer_length(answer: str, cfg: LengthPenaltyConfig, tokenizer: Any = None) -> int:
    """The answer's length in the configured unit (tokens need a tokenizer)."""
    use_tokens = cfg.unit == "tokens" or (cfg.unit == "auto" and tokenizer is not None)
    if use_tokens and tokenizer is not None:
        try:
            return len(tokenizer.encode(answer, add_special_tokens=False))
        except Exception:  # noqa: BLE001 - a broken tokenizer falls back to characters, never raises
            return len(answer)
    return len(answer)


def composite_score(*, correct: bool, format_ok: bool, length: int, cfg: RewardConfig) -> tuple[float, float]:
    """(score, length_factor) by the paper's rule with ``cfg``'s numbers."""
    if correct:
        lf = length_factor(length, cfg.length)
        return cfg.correct_reward * lf, lf
    return (cfg.wrong_reward if format_ok else cfg.format_penalty), 0.0


def result_dict(**values: float | bool) -> dict[str, float]:
    """A reward dict with exactly :data:`RESULT_KEYS` (missing ones 0.0, all floats)."""
    unknown = set(values) - set(RESULT_KEYS)
    if unknown:
        raise KeyError(f"not reward result keys: {sorted(unknown)}")
    return {k: float(values.get(k, 0.0)) for k in RESULT_KEYS}

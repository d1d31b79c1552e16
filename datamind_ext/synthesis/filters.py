"""Filter stage: rule filters, self-consistency, judge selection — every drop keeps its reason.

Rule filters (paper §3 and the issue): protocol format, final-answer length, mixed-language or
garbled text, a trajectory that ends in an execution error, observation blow-up. The
self-consistency filter keeps an LLM task only if all its N sampled answers agree under the
project's answer matcher (``datamind_ext.rewards.match_answer``, 3 % relative tolerance); the
judge then picks which trajectory to keep (done while sampling, see :mod:`llm_pipeline`).
Programmatic tasks have an exact ground truth, so their expert trajectory must match it.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from datamind_ext.protocol import (
    Trajectory,
    is_observation,
    parse_response,
    validate_structure,
)
from datamind_ext.rewards import match_answer
from datamind_ext.synthesis.records import Drop

CUT_MARKER = re.compile(r"\[\d+ characters cut\]")
_CODE_BLOCK = re.compile(r"<code>.*?</code>", re.DOTALL)


@dataclass
class FilterResult:
    kept: list[Trajectory] = field(default_factory=list)
    dropped: list[Drop] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        by_reason = Counter(d.reason for d in self.dropped)
        by_cat: dict[str, Counter] = defaultdict(Counter)
        for d in self.dropped:
            by_cat[d.category or "unknown"][d.reason] += 1
        kept_cat = Counter(t.category or "unknown" for t in self.kept)
        return {
            "kept": len(self.kept), "dropped": len(self.dropped),
            "dropped_by_reason": dict(by_reason.most_common()),
            "dropped_by_category": {c: dict(v) for c, v in sorted(by_cat.items())},
            "kept_by_category": dict(sorted(kept_cat.items())),
        }


def _scripts(text: str) -> Counter:
    """Letters per writing system (first word of the Unicode name: LATIN, CJK, CYRILLIC, …)."""
    c: Counter[str] = Counter()
    for ch in text:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            c[name.split(" ")[0] if name else "UNKNOWN"] += 1
    return c


def language_problem(text: str, mixed_share: float = 0.1) -> str | None:
    """``garbled_text`` (replacement or control characters) or ``mixed_language`` (a second
    writing system above ``mixed_share`` of the letters), else None."""
    if "\ufffd" in text or any(unicodedata.category(ch) == "Cc" and ch not in "\n\r\t" for ch in text):
        return "garbled_text"
    scripts = _scripts(text)
    total = sum(scripts.values())
    if total >= 20:
        shares = sorted((n / total for n in scripts.values()), reverse=True)
        if len(shares) > 1 and shares[1] > mixed_share:
            return "mixed_language"
    return None


def rule_problem(traj: Trajectory, max_answer_chars: int = 1024, max_obs_chars: int = 2048) -> str | None:
    """The first rule a trajectory breaks, by name (None = passes every rule)."""
    problems = validate_structure(traj)
    if problems:
        return "format:" + problems[0].split(":")[0]
    turns = [m for m in traj.messages if m.role == "assistant"]
    for i, m in enumerate(turns):
        p = parse_response(m.content, model_turn=True)
        # a turn before the last is a code turn: its missing answer is expected
        soft = ("text_outside_tags",) if i == len(turns) - 1 else ("text_outside_tags", "no_answer")
        if not p.format_ok(soft=soft):
            return "format:" + next(v for v in p.violations if v not in soft)
        if i < len(turns) - 1 and not p.blocks("code"):
            return "format:no_code"
    answer = traj.final_answer or ""
    if len(answer) > max_answer_chars:
        return "answer_too_long"
    prose = "\n".join(_CODE_BLOCK.sub("", m.content) for m in traj.messages if m.role == "assistant")
    lang = language_problem(prose)
    if lang:
        return lang
    observations = [m.content for m in traj.messages if is_observation(m)]
    if observations:
        last = observations[-1]
        if "The code failed" in last or "The code timed out" in last:
            return "ends_in_error"
        if any(CUT_MARKER.search(o) or len(o) > 2 * max_obs_chars for o in observations):
            return "observation_blowup"
    return None


def answers_agree(answers: list[str | None], rel_tol: float = 0.03) -> bool:
    """Self-consistency: every answer matches the first (the matcher's tolerance, both ways)."""
    if not answers or any(a is None or not a.strip() for a in answers):
        return False
    first = answers[0]
    return all(match_answer(a, first, rel_tol=rel_tol).correct and match_answer(first, a, rel_tol=rel_tol).correct
               for a in answers[1:])


def filter_trajectories(expert: list[Trajectory], selected_llm: list[Trajectory], max_answer_chars: int = 1024,
                        max_obs_chars: int = 2048) -> FilterResult:
    """Apply the rule filters to expert and judge-selected LLM trajectories; check answers against gold."""
    res = FilterResult()
    for t in [*expert, *selected_llm]:
        why = rule_problem(t, max_answer_chars, max_obs_chars)
        if why is None and t.ground_truth is not None and not match_answer(t.final_answer or "", t.ground_truth).correct:
            why = "answer_mismatch"
        if why:
            res.dropped.append(Drop(id=t.id, task_id=t.task_id, category=t.category, reason=why, stage="rules"))
        else:
            res.kept.append(t)
    return res

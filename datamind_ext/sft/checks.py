"""Why a trajectory cannot be trained on, decided before LLaMA-Factory sees it.

LLaMA-Factory's sharegpt converter skips a conversation whose roles do not alternate
(user/observation at odd positions, assistant at even ones, ending on an assistant turn) with
only a log line, and its template replaces an empty system prompt by the template's default,
which our renderer would not. Every such case is named here, so the exporter can report the
trajectory's id and reason instead of losing it silently.
"""

from __future__ import annotations

from datamind_ext.protocol import Trajectory, validate_structure

EMPTY_SYSTEM = "empty_system_prompt"
EMPTY_ASSISTANT = "empty_assistant_turn"
DUPLICATE_ID = "duplicate_id"
INVALID_RECORD = "invalid_record"


def trajectory_problems(traj: Trajectory) -> list[str]:
    """Problems that make ``traj`` unusable for SFT (empty list = trainable).

    Covers the protocol's structure rules (roles out of order, missing answer, empty code)
    and the cases where LLaMA-Factory's rendering would silently differ from ours.
    """
    problems = list(validate_structure(traj))
    msgs = traj.messages
    if msgs and msgs[0].role == "system" and not msgs[0].content:
        # LLaMA-Factory renders "" as the template's default system prompt; the chat template does not.
        problems.append(EMPTY_SYSTEM)
    if any(m.role == "system" for m in msgs[1:]):
        problems.append("roles_out_of_order: system turn after the first message")
    if any(m.role == "assistant" and not m.content.strip() for m in msgs):
        problems.append(EMPTY_ASSISTANT)
    return list(dict.fromkeys(problems))


def reason_name(problem: str) -> str:
    """The stable name of a problem (the part before ``:``), for counting by reason."""
    return problem.split(":", 1)[0]

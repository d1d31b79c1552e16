"""The one trajectory format, written by synthesis and read by SFT, RL, replay and evaluation.

A trajectory is a chat: ``system``, ``user`` (the question), then alternating ``assistant``
turns and interpreter observations. Observations are ``user`` turns whose whole content is one
``<interpreter>…</interpreter>`` block, as in DataMind-12K, so every chat template and
LLaMA-Factory's default masking treat them as environment text (never trained).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from datamind_ext.protocol.tags import CLOSE, OPEN, parse_response

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str


class Trajectory(BaseModel):
    """One multi-turn trajectory and what it was made for."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="stable id (content hash for synthesized data)")
    messages: list[Message]
    task_id: str | None = None
    files: list[str] = Field(default_factory=list, description="data files the code reads, by path")
    ground_truth: str | None = None
    category: str | None = None
    difficulty: int | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    def to_openai(self) -> list[dict[str, str]]:
        return [m.model_dump() for m in self.messages]

    @property
    def final_answer(self) -> str | None:
        for m in reversed(self.messages):
            if m.role == "assistant":
                return parse_response(m.content, model_turn=True).answer
        return None


def observation_message(text: str) -> Message:
    """The user turn that carries an interpreter observation."""
    return Message(role="user", content=f"{OPEN['interpreter']}\n{text}\n{CLOSE['interpreter']}")


def is_observation(msg: Message | dict[str, Any]) -> bool:
    role = msg.role if isinstance(msg, Message) else msg.get("role")
    content = msg.content if isinstance(msg, Message) else msg.get("content", "")
    s = (content or "").strip()
    return role == "user" and s.startswith(OPEN["interpreter"]) and s.endswith(CLOSE["interpreter"])


def validate_structure(traj: Trajectory) -> list[str]:
    """Problems that make a trajectory unusable for training, by name (empty list = fine).

    Roles must be: optional system, user question, then assistant turns each followed by an
    observation except the last, which must contain the answer.
    """
    problems: list[str] = []
    msgs = list(traj.messages)
    if msgs and msgs[0].role == "system":
        msgs = msgs[1:]
    if not msgs or msgs[0].role != "user" or is_observation(msgs[0]):
        return ["roles_out_of_order: first turn after system must be the user question"]
    rest = msgs[1:]
    if not rest:
        return ["no_assistant_turn"]
    for i, m in enumerate(rest):
        want_assistant = i % 2 == 0
        if want_assistant and m.role != "assistant":
            problems.append(f"roles_out_of_order: turn {i + 2} is {m.role}, expected assistant")
            break
        if not want_assistant and not is_observation(m):
            problems.append(f"roles_out_of_order: turn {i + 2} should be an interpreter observation")
            break
    if rest[-1].role != "assistant":
        problems.append("ends_without_assistant_turn")
    else:
        last = parse_response(rest[-1].content, model_turn=True)
        if last.answer is None:
            problems.append("missing_answer")
    for m in rest:
        if m.role == "assistant":
            p = parse_response(m.content, model_turn=True)
            if any(not c.strip() for c in p.code_cells):
                problems.append("empty_code")
                break
    return problems

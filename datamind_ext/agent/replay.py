"""Replay: re-execute a recorded trajectory's code through the turn loop and diff observations.

This validates expert and synthesized data before training: if a recorded observation is not
what the code produces now (different file, different library, hand-edited output), the
trajectory teaches the model something the environment will not do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datamind_ext.agent.config import AgentBudgets
from datamind_ext.agent.loop import Episode, TurnLoop
from datamind_ext.agent.policies import ReplayPolicy
from datamind_ext.agent.session import SessionFactory
from datamind_ext.protocol import Trajectory, is_observation


@dataclass
class ObservationDiff:
    """Observation number ``index`` (0-based) differs; ``None`` means it is missing on that side."""

    index: int
    recorded: str | None
    replayed: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "recorded": self.recorded, "replayed": self.replayed}


def split_prompt(messages: Sequence[dict[str, str]]) -> tuple[list[dict[str, str]], list[str]]:
    """(the prompt messages before the first assistant turn, the assistant turns' contents)."""
    msgs = [dict(m) for m in messages]
    first = next((i for i, m in enumerate(msgs) if m["role"] == "assistant"), len(msgs))
    return msgs[:first], [m["content"] for m in msgs[first:] if m["role"] == "assistant"]


def observation_diffs(recorded: Sequence[dict[str, str]], replayed: Sequence[dict[str, str]]) -> list[ObservationDiff]:
    """Every observation that is not byte-identical between the two message lists."""
    a = [m["content"] for m in recorded if is_observation(m)]
    b = [m["content"] for m in replayed if is_observation(m)]
    out = []
    for i in range(max(len(a), len(b))):
        ra = a[i] if i < len(a) else None
        rb = b[i] if i < len(b) else None
        if ra != rb:
            out.append(ObservationDiff(i, ra, rb))
    return out


async def replay_trajectory(
    traj: Trajectory | dict[str, Any],
    session_factory: SessionFactory,
    *,
    budgets: AgentBudgets | None = None,
    tokenizer: Any = None,
    files: Sequence[str] | None = None,
) -> tuple[Episode, list[ObservationDiff]]:
    """Re-run ``traj``'s assistant turns; return the new episode and the observation diffs.

    ``files`` overrides ``traj.files`` (e.g. resolved against a data folder).
    """
    t = traj if isinstance(traj, Trajectory) else Trajectory.model_validate(traj)
    recorded = t.to_openai()
    prompt, turns = split_prompt(recorded)
    b = budgets or AgentBudgets()
    if len(turns) > b.max_turns:
        b = b.model_copy(update={"max_turns": len(turns)})
    loop = TurnLoop(ReplayPolicy(turns, tokenizer), session_factory, b, tokenizer=tokenizer)
    episode = await loop.run(prompt, t.files if files is None else files)
    return episode, observation_diffs(recorded, episode.messages)

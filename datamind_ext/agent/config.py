"""Budgets of one multi-turn episode (the DataMind reference values are the defaults)."""

from __future__ import annotations

from pydantic import Field

from datamind_ext.config import StrictModel


class AgentBudgets(StrictModel):
    """Limits of one trajectory; running out of any of them without an answer makes it void.

    Per-cell limits (time, memory) belong to the interpreter (``datamind_ext.interpreter.Limits``).

    ``max_response_tokens`` counts everything after the prompt (model tokens, the end-of-turn
    markers and observation tokens), which is what verl pads to ``rollout.response_length``.
    """

    max_turns: int = Field(10, ge=1, description="assistant generations per trajectory")
    max_tokens_per_turn: int = Field(1024, ge=1, description="tokens one assistant turn may generate")
    max_response_tokens: int = Field(8192, ge=1, description="whole response budget, observations included")
    max_observation_chars: int = Field(2048, ge=64, description="observation text kept (head + tail)")
    force_final_answer: bool = Field(
        False, description="tell the model in the last observation that the next turn must answer"
    )

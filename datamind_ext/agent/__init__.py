"""The multi-turn code-interpreter rollout, independent of verl.

:class:`TurnLoop` runs one trajectory (one interpreter session, budgets, void flag, metrics)
for any policy: verl's server manager (``integrations/verl/agent_loop.py``), an
OpenAI-compatible endpoint (:func:`run_chat_episode`, reused by synthesis and evaluation) or a
recorded trajectory (:class:`ReplayPolicy`, data validation).
"""

from datamind_ext.agent.chat import ChatCompletionsPolicy, run_chat_episode
from datamind_ext.agent.config import AgentBudgets
from datamind_ext.agent.loop import (
    Episode,
    EpisodeMetrics,
    EpisodeView,
    TurnLoop,
    TurnMetrics,
    TurnOutput,
)
from datamind_ext.agent.policies import (
    ReplayPolicy,
    TokenServerPolicy,
    engine_generate_fn,
)
from datamind_ext.agent.prompts import system_prompt, task_kind, with_system_prompt
from datamind_ext.agent.replay import observation_diffs, replay_trajectory
from datamind_ext.agent.session import open_session

__all__ = [
    "AgentBudgets", "ChatCompletionsPolicy", "Episode", "EpisodeMetrics", "EpisodeView", "ReplayPolicy",
    "TokenServerPolicy", "TurnLoop", "TurnMetrics", "TurnOutput", "engine_generate_fn",
    "observation_diffs", "open_session", "replay_trajectory", "run_chat_episode", "system_prompt", "task_kind",
    "with_system_prompt",
]

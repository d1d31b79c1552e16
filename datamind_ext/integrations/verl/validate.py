"""Validate every datamind block of a verl RL config on the driver, before Ray starts.

Without this a typo in ``actor_rollout_ref.datamind_loss`` or ``datamind.agent`` surfaces minutes
later inside a Ray actor as a traceback with exit code 1. :class:`ValidateRLConfig` is a Hydra
callback (Hydra's public ``hydra.callbacks`` hook, run by ``@hydra.main`` right before verl's
``main``): the recipes' ``rl.yaml`` enable it, and on a bare command line it is
``+hydra.callbacks.datamind._target_=datamind_ext.integrations.verl.validate.ValidateRLConfig``.
A mistake is one line on stderr and exit code 2, within seconds.

What is checked: the loss block (unknown keys, clip ratios agreeing with verl's actor keys, no KL
or entropy bonus) when the datamind trainer mode is selected; ``datamind.agent`` (the agent
budgets) and ``datamind.interpreter`` (the InterpreterConfig); the reward kwargs when our
reward function or manager is selected.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from datamind_ext.config import parse_config
from datamind_ext.errors import UserError
from datamind_ext.integrations.verl.contract import (
    AGENT_BLOCK,
    TRAINER_MODE,
    check_actor_settings,
    resolve_loss_config,
)

_REWARDS_MODULE = "datamind_ext.integrations.verl.rewards"
_MANAGER_NAME = "datamind"


def _get(node: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if node is None:
            return None
        node = node.get(part, None) if hasattr(node, "get") else None
    return node


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, Mapping) and not hasattr(value, "_content")):
        return dict(value or {})
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value, resolve=True)


def validate_rl_config(config: Any) -> None:
    """Raise :class:`UserError` (one line) for the first mistake in a datamind block of ``config``."""
    if str(_get(config, "trainer.v1.trainer_mode")) == TRAINER_MODE:
        arr = config.get("actor_rollout_ref")
        check_actor_settings(arr, resolve_loss_config(arr))
    elif _get(config, "actor_rollout_ref.datamind_loss") is not None:
        raise UserError(f"actor_rollout_ref.datamind_loss is set but the trainer is not the DataMind one: "
                        f"set trainer.v1.trainer_mode={TRAINER_MODE}")

    block = _plain(config.get(AGENT_BLOCK, None))
    unknown = sorted(set(block) - {"agent", "interpreter"})
    if unknown:
        raise UserError(f"{AGENT_BLOCK}: unknown key(s) {unknown}; choose from ['agent', 'interpreter']")
    from datamind_ext.agent.config import AgentBudgets

    parse_config(AgentBudgets, block.get("agent") or {}, f"{AGENT_BLOCK}.agent")
    from datamind_ext.interpreter import InterpreterConfig

    parse_config(InterpreterConfig, block.get("interpreter") or {}, f"{AGENT_BLOCK}.interpreter")

    fn_path = str(_get(config, "reward.custom_reward_function.path") or "")
    if _REWARDS_MODULE in fn_path or str(_get(config, "reward.reward_manager.name")) == _MANAGER_NAME:
        from datamind_ext.integrations.verl.rewards import scoring_config

        scoring_config(_plain(_get(config, "reward.custom_reward_function.reward_kwargs")))


try:  # Hydra's callback base class (hydra-core >= 1.2, which verl requires)
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object  # type: ignore[assignment,misc]


class ValidateRLConfig(Callback):  # type: ignore[misc]
    """Hydra callback: validate the datamind blocks before the task function (verl's main) runs."""

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        try:
            validate_rl_config(config)
        except UserError as err:
            print(f"datamind-ext: error: {err}", file=sys.stderr)
            sys.exit(2)

"""A verl trainer config with our agent loop, and a batch of rows as verl's AgentLoopWorker takes it
(shared by the agent-loop tests through verl and through the ``datamind_hf`` backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def compose_config(model_path: Path, *overrides: str):
    from hydra import compose, initialize_config_module

    with initialize_config_module("verl.trainer.config", version_base=None):
        return compose("ppo_trainer", overrides=[
            f"actor_rollout_ref.model.path={model_path}",
            "actor_rollout_ref.rollout.name=datamind_hf",
            "actor_rollout_ref.rollout.prompt_length=1024",
            "actor_rollout_ref.rollout.response_length=3072",
            "actor_rollout_ref.rollout.calculate_log_probs=True",
            "actor_rollout_ref.rollout.agent.default_agent_loop=datamind_code_agent",
            *overrides,
        ])


def make_batch(rows: list[dict[str, Any]]):
    from verl import DataProto

    n = len(rows)
    raw = np.empty(n, dtype=object)
    extra = np.empty(n, dtype=object)
    for i, r in enumerate(rows):
        raw[i] = [{"role": "user", "content": r["question"]}]
        extra[i] = {"files": r["files"]}
    non_tensors: dict[str, Any] = {"raw_prompt": raw, "extra_info": extra, "index": np.arange(n)}
    if any("agent_name" in r for r in rows):
        non_tensors["agent_name"] = np.array([r.get("agent_name", "datamind_code_agent") for r in rows], dtype=object)
    return DataProto.from_dict(non_tensors=non_tensors)

"""Read back, from verl's own registries, which entries datamind_ext put there.

Run as ``python -m datamind_ext.integrations.verl.inspect``: it imports verl the way every Ray
worker does (the entry point registers our components), then prints JSON. ``datamind-ext
doctor`` runs it in a subprocess so that verl and LLaMA-Factory are never imported together.
"""

from __future__ import annotations

import importlib
from typing import Any

from datamind_ext.integrations.readback import OURS, main, report, target_of

# (kind, module, attribute) of every verl registry a plugin can write to.
REGISTRIES: tuple[tuple[str, str, str], ...] = (
    ("agent_loop", "verl.experimental.agent_loop.agent_loop", "_agent_loop_registry"),
    ("reward_manager", "verl.experimental.reward_loop.reward_manager.registry", "REWARD_MANAGER"),
    ("policy_loss", "verl.trainer.ppo.core_algos", "POLICY_LOSS_REGISTRY"),
    ("adv_estimator", "verl.trainer.ppo.core_algos", "ADV_ESTIMATOR_REGISTRY"),
    ("trainer", "verl.trainer.ppo.v1.trainer_base", "TRAINER_REGISTRY"),
    ("rollout_replica", "verl.workers.rollout.replica", "RolloutReplicaRegistry._registry"),
    ("rollout_adapter", "verl.workers.rollout.base", "_ROLLOUT_REGISTRY"),
    ("engine", "verl.workers.engine.base", "EngineRegistry._engines"),
)


def _walk(prefix: str, obj: Any) -> list[tuple[str, str]]:
    if isinstance(obj, dict) and "_target_" not in obj:
        out = []
        for k, v in obj.items():
            out += _walk(f"{prefix}{k}/" if isinstance(v, dict) and "_target_" not in v else f"{prefix}{k}", v)
        return out
    return [(prefix.rstrip("/"), target_of(obj))]


def read_back() -> dict[str, Any]:
    import verl

    from datamind_ext.integrations.verl.registration import FAILURES, TABLE

    found: dict[str, dict[str, str]] = {}
    for kind, module, attr in REGISTRIES:
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as err:  # noqa: BLE001
            found[kind] = {"<unreadable>": f"{type(err).__name__}: {err}"}
            continue
        found[kind] = {str(name): target for name, target in _walk("", obj) if OURS in target}
    return report("verl", verl.__version__, [f"{e.registry}:{e.name}" for e in TABLE], FAILURES, found)


if __name__ == "__main__":
    main(read_back)

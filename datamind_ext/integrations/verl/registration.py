"""Registration of every datamind_ext component into verl's registries: one table, one function.

:data:`TABLE` lists (verl registry, name, import path). Registries that accept an import path get
the path, so registering does not import the component (the agent loop, the CPU rollout): verl
imports it when it needs it. Registries that hold classes (the trainer, the reward manager) get
the class, imported here.

Why a class module can be half-imported here, and the one place that handles it: ``import verl``
loads the ``verl.plugins`` entry point (``plugin.py``), which calls :func:`register_all`. If a
component module is what first imported verl (``from datamind_ext.integrations.verl.trainer
import ...`` in a fresh process), that module is still executing its first lines, so its class
does not exist yet. Such entries are left pending and each class module ends with
``registration.loaded(__name__)``, which registers them once the class exists.

verl loads plugins while ``import verl`` runs and swallows their errors at DEBUG level, so a
failure here is logged at ERROR with the component's name and kept in :data:`FAILURES` for
``datamind-ext doctor`` (which exits non-zero).
"""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
from collections.abc import Callable
from typing import Any, NamedTuple

log = logging.getLogger("datamind_ext.verl")

_PKG = "datamind_ext.integrations.verl"


class Entry(NamedTuple):
    registry: str  # a key of _WRITERS
    name: str  # the name users select in verl's config
    target: str  # import path "module.Attribute"


#: Every datamind_ext entry in verl's registries (names also spelled in the modules' docstrings).
TABLE: tuple[Entry, ...] = (
    Entry("agent_loop", "datamind_code_agent", f"{_PKG}.agent_loop.DataMindAgentLoop"),
    Entry("rollout_replica", "datamind_hf", f"{_PKG}.cpu_rollout.HFReplica"),
    Entry("rollout_adapter", "datamind_hf", f"{_PKG}.cpu_rollout.HFServerAdapter"),
    Entry("reward_manager", "datamind", f"{_PKG}.rewards.DataMindRewardManager"),
    Entry("trainer", "datamind_sync", f"{_PKG}.trainer.DataMindTrainerSync"),
)

FAILURES: dict[str, str] = {}
_pending: dict[str, list[Entry]] = {}
_done = False


def _split(target: str) -> tuple[str, str]:
    module, attr = target.rsplit(".", 1)
    return module, attr


def _load(target: str) -> Any:
    module, attr = _split(target)
    return getattr(importlib.import_module(module), attr)


def _agent_loop(name: str, target: str) -> None:
    # verl's @register stores exactly this ({"_target_": fqdn}) and instantiates it with Hydra
    from verl.experimental.agent_loop.agent_loop import _agent_loop_registry

    _agent_loop_registry[name] = {"_target_": target}


def _rollout_replica(name: str, target: str) -> None:
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    RolloutReplicaRegistry.register(name, lambda: _load(target))  # a loader: imported when selected


def _rollout_adapter(name: str, target: str) -> None:
    from verl.workers.rollout import base as rollout_base

    rollout_base._ROLLOUT_REGISTRY[(name, "async")] = target  # verl imports the fqdn when it builds one


def _reward_manager(name: str, cls: Any) -> None:
    from verl.experimental.reward_loop.reward_manager import (
        get_reward_manager_cls,
        register,
    )

    try:
        if get_reward_manager_cls(name) is cls:
            return
    except ValueError:
        pass
    register(name)(cls)


def _trainer(name: str, cls: Any) -> None:
    from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY, register_trainer

    if TRAINER_REGISTRY.get(name) is not cls:
        register_trainer(name)(cls)


#: registry -> (writer, takes an import path?)
_WRITERS: dict[str, tuple[Callable[[str, Any], None], bool]] = {
    "agent_loop": (_agent_loop, True),
    "rollout_replica": (_rollout_replica, True),
    "rollout_adapter": (_rollout_adapter, True),
    "reward_manager": (_reward_manager, False),
    "trainer": (_trainer, False),
}


def _initializing(module: str) -> bool:
    mod = sys.modules.get(module)
    spec = getattr(mod, "__spec__", None)
    return mod is not None and bool(getattr(spec, "_initializing", False))


def _register(entry: Entry) -> None:
    writer, takes_path = _WRITERS[entry.registry]
    if takes_path:
        writer(entry.name, entry.target)
        return
    module, _ = _split(entry.target)
    if _initializing(module):  # this module is what imported verl: see the module docstring
        _pending.setdefault(module, []).append(entry)
        return
    writer(entry.name, _load(entry.target))


def _guarded(entry: Entry, fn: Callable[[], None]) -> None:
    key = f"{entry.registry}:{entry.name}"
    try:
        fn()
    except Exception as err:  # noqa: BLE001 - reported loudly, never hidden like verl's DEBUG log
        FAILURES[key] = f"{type(err).__name__}: {err}"
        msg = f"datamind_ext: registering {entry.target} as verl {key} failed: {err}\n{traceback.format_exc()}"
        log.error(msg)
        print(msg, file=sys.stderr)


def register_all() -> dict[str, str]:
    """Register every entry once per process (CPU shims first when opted in); return the failures."""
    global _done
    if _done:
        return FAILURES
    _done = True
    from datamind_ext.integrations.verl import cpu

    _guarded(Entry("platform", "cpu", f"{_PKG}.cpu.activate_cpu_shims"), cpu.register)
    for entry in TABLE:
        _guarded(entry, lambda e=entry: _register(e))
    return FAILURES


def loaded(module: str) -> None:
    """Called at the end of each class module: register its entries left pending (idempotent)."""
    for entry in _pending.pop(module, []):
        writer, _ = _WRITERS[entry.registry]
        _guarded(entry, lambda e=entry, w=writer: w(e.name, _load(e.target)))

"""Resolve a recipe's RL config the way verl 0.9.1 does, and list what verl would change or ignore.

Why: a GPU run is expensive and verl is quiet about settings it does not apply — it forces
``data.gen_batch_size`` to 1 under dynamic sampling, ignores ``filter_groups.max_num_gen_batches``
with a warning, and accepts any key it does not read. This composes the recipe with verl's own
hydra config (``ppo_trainer``), runs verl's own ``validate_config`` and dataclass conversions
(``omega_conf_to_dataclass``) and trainer checks with their log warnings captured, and reports:

- every warning verl logs or raises while resolving the config;
- every key the recipe sets that verl's schema does not have (verl would never read it), except
  our own namespaces (``datamind``, ``actor_rollout_ref.datamind_loss``, free-form ``override_config``);
- the trainer's rewrite of ``data.gen_batch_size`` (``PPOTrainer._init_dataloader``, inline in a
  method that builds the datasets, so mirrored here with its condition).

verl is imported lazily; nothing here runs a model. Used by tests/test_recipe_gpu_configs.py.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

#: keys of ours that verl's schema does not know (read by our plugin, not by verl)
OWN_PREFIXES = ("datamind.", "actor_rollout_ref.datamind_loss.", "actor_rollout_ref.model.override_config.")


def compose(recipe_dir: Path, overrides: Sequence[str] = (), config_name: str = "rl") -> Any:
    """The recipe's RL config as ``main_ppo`` would receive it (hydra compose, not resolved)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(recipe_dir).resolve()), version_base=None):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def stock_config() -> Any:
    """verl's own ``ppo_trainer`` config, nothing of ours: the schema recipe keys are checked against."""
    import verl.trainer.config as verl_config
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(verl_config.__file__).parent), version_base=None):
        return hydra_compose(config_name="ppo_trainer")


def leaf_keys(node: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths of every leaf of a (yaml-loaded) mapping."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaf_keys(v, f"{prefix}{k}.")
    else:
        yield prefix.rstrip(".")


def keys_verl_does_not_have(recipe_yaml: Path, overrides: Sequence[str] = ()) -> list[str]:
    """Keys the recipe yaml (and ``overrides``) set that are absent from verl's stock config."""
    import yaml
    from omegaconf import OmegaConf

    raw = yaml.safe_load(recipe_yaml.read_text())
    raw.pop("hydra", None)
    raw.pop("defaults", None)
    keys = list(leaf_keys(raw)) + [o.lstrip("+").split("=", 1)[0] for o in overrides]
    stock = stock_config()
    missing = []
    for key in keys:
        if key.startswith(OWN_PREFIXES):
            continue
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(stock, parent) if parent else stock
        if node is None or not OmegaConf.is_dict(node) or leaf not in node.keys():  # keys(): MISSING (???) counts
            missing.append(key)
    return missing


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


@contextlib.contextmanager
def captured_warnings() -> Iterator[list[str]]:
    """Every logging warning (any logger) and Python warning raised inside, as text."""
    handler = _Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    found: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with contextlib.redirect_stdout(io.StringIO()):  # validate_config prints its batch arithmetic
                yield found
    finally:
        root.removeHandler(handler)
    found += handler.messages
    found += [f"{w.category.__name__}: {w.message}" for w in caught if not issubclass(w.category, DeprecationWarning)]


def gen_batch_size_rewrite(cfg: Any) -> str | None:
    """What ``PPOTrainer._init_dataloader`` (verl/trainer/ppo/v1/trainer_base.py) does to
    ``data.gen_batch_size``: exact refill (any trainer mode but ``sync``, dynamic sampling, or
    ``sync_refill_failed_groups``) forces it to 1, warning when it was set to another value."""
    fg = cfg.algorithm.get("filter_groups", None)
    exact = (cfg.trainer.v1.trainer_mode != "sync" or bool(fg is not None and fg.get("enable", False))
             or bool(cfg.trainer.v1.sampler.get("sync_refill_failed_groups", False)))
    user = cfg.data.get("gen_batch_size", None)
    if exact and user not in (None, 1):
        return f"data.gen_batch_size={user} is overridden to 1 (verl's v1 trainer, exact refill)"
    return None


def resolve(cfg: Any) -> tuple[dict[str, Any], list[str]]:
    """Run verl's config checks on ``cfg``; return verl's dataclasses and every problem found."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))  # main_ppo resolves before training
    problems: list[str] = []
    resolved: dict[str, Any] = {}
    with captured_warnings() as found:
        validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
        resolved["actor"] = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
        resolved["rollout"] = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
        resolved["algorithm"] = omega_conf_to_dataclass(cfg.algorithm)
        resolved["checkpoint"] = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor.checkpoint)
        # the trainer's own DAPO check, on a stand-in holding only the config it reads
        resolved["filter_groups_metric"] = PPOTrainer._resolve_filter_groups_metric(SimpleNamespace(config=cfg))  # type: ignore[arg-type]
    problems += [f"verl warns: {m}" for m in found]
    rewrite = gen_batch_size_rewrite(cfg)
    if rewrite:
        problems.append(rewrite)
    return resolved, problems

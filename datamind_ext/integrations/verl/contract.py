"""The contract between the datamind trainer mode, its actor worker and its loss (no verl import).

Everything the three sides agree on lives here, once: the trainer-mode name, the non-tensor keys
the trainer and the worker write for the loss, the per-row role fields, and the loss config.

The loss config is parsed once, by :func:`resolve_loss_config`: on the driver (the Hydra
callback in ``validate.py``, before Ray starts) and in the trainer, which passes the parsed
object to its actor workers (``DataMindActorRolloutRefWorker.set_datamind_loss``); the workers
never read the raw block. Clip ratios have one source, verl's ``actor_rollout_ref.actor.clip_ratio_*``
keys: a ``datamind_loss.clip_ratio_*`` that says something else is refused (issue 19).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from datamind_ext.config import parse_config
from datamind_ext.errors import UserError
from datamind_ext.losses import SftRlLossConfig

#: The name of the DataMind trainer in verl's trainer registry (``trainer.v1.trainer_mode``).
TRAINER_MODE = "datamind_sync"
#: The mode verl's code compares with (replay buffer, refill, resume): the trainer keeps it internally.
VERL_SYNC_MODE = "sync"

#: Where the datamind blocks live in verl's RL config.
LOSS_BLOCK = "actor_rollout_ref.datamind_loss"
AGENT_BLOCK = "datamind"

# Non-tensor fields of the update batch (trainer → worker → loss).
#: ``batch.extra_info``: the trainer step, for the γ schedule (trainer writes, worker reads).
STEP_KEY = "datamind_step"
#: ``batch.extra_info``: mini-batches per update once expert rows were added (trainer → worker).
NUM_MINI_BATCH_KEY = "datamind_num_mini_batch"
#: Per mini-batch, written by the worker for the loss.
GAMMA_KEY = "datamind_gamma"
RL_TOKENS_KEY = "datamind_rl_tokens"
SFT_TOKENS_KEY = "datamind_sft_tokens"
SCHEDULE_METRICS_KEY = "datamind_schedule_metrics"

#: Per-row role fields (``(bs,)`` int64 tensors) the trainer puts into TransferQueue.
IS_EXPERT = "is_expert"
IS_VOID = "is_void"
ROLE_FIELDS: tuple[str, str] = (IS_EXPERT, IS_VOID)
#: Prefix of the TransferQueue keys of expert rows (cleared after each update).
EXPERT_UID_PREFIX = "datamind_expert"

#: verl's actor keys that are the one source of the loss's clip ratios.
CLIP_KEYS: tuple[str, ...] = ("clip_ratio_low", "clip_ratio_high", "clip_ratio_c")


class DataMindLossConfig(SftRlLossConfig):
    """The recipe's ``datamind_loss`` block (under ``actor_rollout_ref`` in verl's config).

    Defaults are the paper's: cosine γ from 0.9 to 0.05 over 350 steps (counted from 1), plain
    NLL on expert assistant tokens, DAPO token-mean. In verl the clip ratios come from
    ``actor_rollout_ref.actor.clip_ratio_{low,high,c}`` (see :func:`resolve_loss_config`).
    """

    enable: bool = True
    success_threshold: float = Field(0.0, description="adaptive schedule: a rollout succeeds if its reward is above")


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, Mapping) and not hasattr(value, "_content"):
        return dict(value or {})
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value, resolve=True)


def resolve_loss_config(actor_rollout_ref: Any) -> DataMindLossConfig:
    """The validated loss config of an ``actor_rollout_ref`` node (unknown keys are one-line errors).

    The clip ratios are verl's ``actor.clip_ratio_*``; setting ``datamind_loss.clip_ratio_*`` to
    another value is refused, so that the verl key a user reaches for is the one that acts.
    """
    raw = actor_rollout_ref.get("datamind_loss", None)
    cfg = parse_config(DataMindLossConfig, _plain(raw), LOSS_BLOCK)
    actor = actor_rollout_ref.get("actor", None) or {}
    verl_clip: dict[str, float] = {}
    for key in CLIP_KEYS:
        value = actor.get(key, None)
        if value is None:
            continue
        verl_clip[key] = float(value)
        if key in cfg.model_fields_set and getattr(cfg, key) != float(value):
            raise UserError(
                f"{LOSS_BLOCK}.{key}={getattr(cfg, key)} disagrees with actor_rollout_ref.actor.{key}={value}; "
                f"the loss uses verl's actor_rollout_ref.actor.{key}: set only that one"
            )
    return cfg.model_copy(update=verl_clip)


def check_actor_settings(actor_rollout_ref: Any, cfg: DataMindLossConfig) -> None:
    """verl actor settings the combined loss cannot honour, refused by name."""
    if not cfg.enable:
        return
    actor = actor_rollout_ref.get("actor", None) or {}
    if actor.get("use_kl_loss", False) or float(actor.get("entropy_coeff", 0.0) or 0.0) != 0.0:
        raise UserError(
            "the DataMind loss has no KL or entropy bonus (the paper uses neither): set "
            "actor_rollout_ref.actor.use_kl_loss=false and entropy_coeff=0"
        )

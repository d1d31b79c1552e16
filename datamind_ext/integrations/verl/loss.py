"""The combined SFT+RL objective as verl's actor loss, installed with ``set_loss_fn``.

Why ``set_loss_fn`` and not ``register_policy_loss``: a registered policy loss sees only seven PPO
tensors, while the SFT term needs per-row roles (expert / void) and the global token counts of
both terms. A ``set_loss_fn`` loss receives the micro-batch's whole TensorDict.

Why a worker subclass (``datamind_ext.integrations.verl.worker``) rather than the lighter
driver-side ``actor_rollout_wg.set_loss_fn(...)``: a verl loss runs per micro-batch, but
verl-style global token-mean reductions need the token counts of the whole mini-batch across
data-parallel ranks, separately for the RL and the SFT term (verl's own ``batch_num_tokens``
counts ``loss_mask`` only, i.e. both kinds together), and γ must be one value per step on every
rank. The worker computes those once per mini-batch / step (all-reduced) and writes them into
the TensorDict as non-tensor fields this loss reads; a driver-side hook cannot do that.

Rows of the batch and their roles (``is_expert``, ``is_void`` are ``(bs,)`` int tensors):

- rollout rows: ``rl_mask = response_mask`` (observations already 0), SFT mask 0;
- void rollouts (no answer, budget exhausted): masked from the RL term (their reward still
  entered the group statistics when advantages were computed);
- expert rows (the expert trajectory of the prompt, rendered by the one renderer): SFT mask =
  their ``response_mask`` (assistant tokens), never in the RL term; their ``advantages`` and
  ``old_log_probs`` are zeros that no term reads.
"""

from __future__ import annotations

from typing import Any

import torch
from verl.utils import tensordict_utils as tu
from verl.utils.metric import AggregationType, Metric
from verl.workers.utils.padding import no_padding_2_padding

from datamind_ext.integrations.verl.contract import (
    GAMMA_KEY,
    IS_EXPERT,
    IS_VOID,
    RL_TOKENS_KEY,
    SCHEDULE_METRICS_KEY,
    SFT_TOKENS_KEY,
    TRAINER_MODE,
    DataMindLossConfig,
)
from datamind_ext.losses import sft_rl_loss


def _row_flag(data: Any, key: str, batch_size: int, device: torch.device) -> torch.Tensor:
    if key in data:
        return data[key].reshape(-1).to(device=device, dtype=torch.float32)
    return torch.zeros(batch_size, device=device)


def role_masks(response_mask: torch.Tensor, is_expert: torch.Tensor, is_void: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rl_mask, sft_mask)`` from the padded response mask and the per-row flags."""
    resp = response_mask.float()
    rl_rows = (1.0 - is_expert) * (1.0 - is_void)
    return resp * rl_rows[:, None], resp * is_expert[:, None]


def datamind_actor_loss(config: DataMindLossConfig, model_output: dict, data: Any, dp_group: Any = None):
    """verl loss contract ``(model_output, data, dp_group) -> (loss, metrics)``, ``config`` bound by partial."""
    log_prob = no_padding_2_padding(model_output["log_probs"], data)
    entropy = model_output.get("entropy", None)
    if entropy is not None:
        entropy = no_padding_2_padding(entropy, data)

    gamma = tu.get_non_tensor_data(data=data, key=GAMMA_KEY, default=None)
    rl_tokens = tu.get_non_tensor_data(data=data, key=RL_TOKENS_KEY, default=None)
    sft_tokens = tu.get_non_tensor_data(data=data, key=SFT_TOKENS_KEY, default=None)
    if gamma is None or rl_tokens is None or sft_tokens is None:
        raise RuntimeError(
            "datamind_actor_loss needs γ and global token counts from DataMindTrainingWorker; "
            f"select the trainer with trainer.v1.trainer_mode={TRAINER_MODE}"
        )
    dp_size = data["dp_size"]
    batch_size = data["response_mask"].shape[0]
    device = log_prob.device
    is_expert = _row_flag(data, IS_EXPERT, batch_size, device)
    is_void = _row_flag(data, IS_VOID, batch_size, device)

    padded = data.select("response_mask", "old_log_probs", "advantages").to_padded_tensor()
    rl_mask, sft_mask = role_masks(padded["response_mask"], is_expert, is_void)
    # the expert rows' old_log_probs/advantages are placeholders; the masks keep them out
    loss, m = sft_rl_loss(
        log_probs=log_prob,
        old_log_probs=padded["old_log_probs"].to(log_prob.dtype),
        advantages=padded["advantages"].to(log_prob.dtype),
        rl_mask=rl_mask,
        sft_mask=sft_mask,
        gamma=float(gamma),
        cfg=config,
        rl_denom=float(rl_tokens) / dp_size,
        sft_denom=float(sft_tokens) / dp_size,
    )
    # pg_loss / sft_loss are partial sums of a global token-mean: summed over micro-batches
    metrics: dict[str, Any] = {
        "actor/pg_loss": Metric(value=m["pg_loss"], aggregation=AggregationType.SUM),
        "actor/sft_loss": Metric(value=m["sft_loss"], aggregation=AggregationType.SUM),
        "actor/gamma": float(gamma),
        "actor/sft_tokens": float(sft_tokens),
        "actor/rl_tokens": float(rl_tokens),
        "actor/pg_clipfrac": m["pg_clipfrac"],
        "actor/pg_clipfrac_lower": m["pg_clipfrac_lower"],
        "actor/ppo_kl": m["ppo_kl"],
    }
    if entropy is not None and float(rl_tokens) > 0:
        ent = (entropy.detach() * rl_mask).sum() / (float(rl_tokens) / dp_size)
        # not "actor/entropy": verl logs that name for the old policy over all rollouts (void included)
        metrics["actor/rl_entropy"] = Metric(value=ent.item(), aggregation=AggregationType.SUM)
    schedule_metrics = tu.get_non_tensor_data(data=data, key=SCHEDULE_METRICS_KEY, default=None) or {}
    for k, v in dict(schedule_metrics).items():
        metrics[f"actor/{k}"] = float(v)  # adaptive: gamma_base, collapse_success, collapse_entropy
    return loss, metrics

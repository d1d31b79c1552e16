"""The combined objective ``L = γ·L_SFT + (1−γ)·L_DAPO`` on per-token tensors (pure torch).

Inputs are already-aligned response tensors: position ``t`` of ``log_probs`` is log p of the
response token ``t`` (verl's actor and a causal-LM forward both produce this), and the masks are
label-aligned on the same positions. Hence no shifting happens here, which is exactly where the
reference code's off-by-one lived (it masked with ``loss_mask[:, :-1]`` against ``labels[:, 1:]``).

Row roles are carried by the masks, so one forward pass over a batch holding rollout rows and
expert rows serves both terms:

- ``rl_mask``: policy tokens of non-void rollouts. Expert rows and void rollouts (no answer,
  budget exhausted) are 0 here; void rollouts still counted in their group's reward statistics
  upstream, when advantages were computed.
- ``sft_mask``: assistant tokens of expert trajectories (observations masked by the renderer).

Reductions: each term is ``Σ(token loss · mask) / denom``. Passing the global token count of the
term (over all micro-batches and data-parallel ranks, divided by the data-parallel size as verl's
``agg_loss`` does, since FSDP averages gradients over ranks) gives verl's global token-mean, so the
result does not depend on how the batch was split. With ``denom=None`` it is a local token-mean.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from datamind_ext.config import StrictModel
from datamind_ext.losses.schedules import ScheduleConfig
from datamind_ext.losses.token_weighting import masked_token_mean, weighted_nll


class SftRlLossConfig(StrictModel):
    """Hyper-parameters of the combined objective; defaults are the paper's (Table 3, DAPO)."""

    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    token_weighting: Literal["nll", "chord_phi", "dft"] = "nll"
    clip_ratio_low: float = Field(0.2, ge=0.0)
    clip_ratio_high: float = Field(0.28, ge=0.0)
    clip_ratio_c: float = Field(10.0, gt=1.0, description="dual-clip bound for negative advantages (reference: 10)")


def dapo_token_losses(
    log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    clip_ratio_low: float,
    clip_ratio_high: float,
    clip_ratio_c: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-token decoupled-clip policy-gradient loss (with dual clip for negative advantages).

    Returns ``(token_loss, clipped, clipped_lower, approx_kl)``; the last three are for metrics.
    The log-ratio is clamped to ±20 before ``exp`` for the same numerical reason verl does.
    """
    log_ratio = torch.clamp(log_probs - old_log_probs, min=-20.0, max=20.0)
    ratio = torch.exp(log_ratio)
    loss_unclipped = -advantages * ratio
    loss_clipped = -advantages * torch.clamp(ratio, 1.0 - clip_ratio_low, 1.0 + clip_ratio_high)
    loss_upper = torch.maximum(loss_unclipped, loss_clipped)
    loss_dual = torch.minimum(loss_upper, -advantages * clip_ratio_c)
    token_loss = torch.where(advantages < 0, loss_dual, loss_upper)
    clipped = (loss_clipped > loss_unclipped).float()
    clipped_lower = ((loss_upper > -advantages * clip_ratio_c) & (advantages < 0)).float()
    return token_loss, clipped, clipped_lower, -log_ratio


def sft_rl_loss(
    log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    rl_mask: Tensor,
    sft_mask: Tensor,
    gamma: float,
    cfg: SftRlLossConfig,
    rl_denom: float | Tensor | None = None,
    sft_denom: float | Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """``γ·L_SFT + (1−γ)·L_DAPO`` and its metrics (``pg_loss``, ``sft_loss``, ``gamma``, clip fractions).

    A term whose mask is empty contributes an exact zero (still in the graph), so a micro-batch of
    expert rows only, or of rollouts only, is fine.
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    rl_mask = rl_mask.to(log_probs.dtype)
    sft_mask = sft_mask.to(log_probs.dtype)
    pg_tokens, clipped, clipped_lower, kl = dapo_token_losses(
        log_probs, old_log_probs, advantages, cfg.clip_ratio_low, cfg.clip_ratio_high, cfg.clip_ratio_c
    )
    pg_loss = masked_token_mean(pg_tokens, rl_mask, rl_denom)
    sft_loss = masked_token_mean(weighted_nll(log_probs, cfg.token_weighting), sft_mask, sft_denom)
    loss = gamma * sft_loss + (1.0 - gamma) * pg_loss
    n_rl = rl_mask.sum().clamp(min=1.0)
    metrics = {
        "gamma": float(gamma),
        "pg_loss": pg_loss.item(),
        "sft_loss": sft_loss.item(),
        "sft_tokens": sft_mask.sum().item(),
        "rl_tokens": rl_mask.sum().item(),
        "pg_clipfrac": ((clipped * rl_mask).sum() / n_rl).item(),
        "pg_clipfrac_lower": ((clipped_lower * rl_mask).sum() / n_rl).item(),
        "ppo_kl": ((kl.detach() * rl_mask).sum() / n_rl).item(),
    }
    return loss, metrics

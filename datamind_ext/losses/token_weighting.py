"""Per-token weighting of the SFT negative log-likelihood, shared by RL and the SFT stage.

Why one module: the SFT term inside the RL objective and LLaMA-Factory's SFT stage must weight
expert tokens the same way, or "γ=1 equals pure SFT" stops being true. Everything here is a pure
function of ``log_probs`` (log p of the target token, the quantity both verl's actor and a
causal-LM forward already compute), so no full-vocabulary softmax is materialised.

Weightings (the weight is always stop-gradient, so only the NLL carries gradient):

- ``nll``: plain negative log-likelihood, ``-log p``.
- ``chord_phi``: CHORD's φ weighting, ``-log p · sg(p(1-p))``: tokens the policy is already sure
  of (p≈1) or finds very unlikely (p≈0) contribute little, which keeps expert data from
  overwriting the policy's own distribution.
- ``dft``: dynamic fine-tuning, ``-log p · sg(p)``: rescales each token's gradient by its
  probability, so the update behaves like an RL step with an implicit reward.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

TokenWeighting = Literal["nll", "chord_phi", "dft"]
TOKEN_WEIGHTINGS: tuple[str, ...] = get_args(TokenWeighting)


def weighted_nll(log_probs: Tensor, weighting: TokenWeighting = "nll") -> Tensor:
    """Per-token SFT loss with the same shape as ``log_probs``.

    ``log_probs`` holds log p(target token) per position; masking and reduction are left to the
    caller (:func:`masked_token_mean`), because the right denominator depends on whether the
    caller aggregates over one micro-batch or over the global batch.
    """
    nll = -log_probs
    if weighting == "nll":
        return nll
    probs = torch.exp(log_probs.detach())
    if weighting == "chord_phi":
        return nll * (probs * (1.0 - probs))
    if weighting == "dft":
        return nll * probs
    raise ValueError(f"unknown token weighting {weighting!r}; choose one of: {', '.join(TOKEN_WEIGHTINGS)}")


def masked_token_mean(loss: Tensor, mask: Tensor, denom: float | Tensor | None = None) -> Tensor:
    """Sum of ``loss`` over positions where ``mask`` is set, divided by ``denom``.

    ``denom`` defaults to the number of masked tokens here (a local token-mean). Pass the global
    token count of the whole batch (all micro-batches and data-parallel ranks) to get verl's
    global token-mean, where summing the per-micro-batch results gives the batch mean exactly.
    An empty mask gives a zero that still belongs to the graph, so backward never fails.
    """
    mask = mask.to(loss.dtype)
    total = (loss * mask).sum()
    if denom is None:
        denom = mask.sum()
    if isinstance(denom, Tensor):
        denom = denom.to(device=loss.device, dtype=loss.dtype)
        denom = torch.where(denom == 0, torch.ones_like(denom), denom)
    elif float(denom) == 0.0:
        denom = 1.0
    return total / denom

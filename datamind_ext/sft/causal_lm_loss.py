"""A causal-LM loss with SFT token weighting, shaped like transformers' ``ForCausalLMLoss``.

LLaMA-Factory trains through transformers' model forward, which calls
``model.loss_function(logits=..., labels=..., vocab_size=..., num_items_in_batch=...)`` with
*unshifted* labels. Replacing that function (see the LLaMA-Factory integration's loss callback)
swaps the loss without touching LLaMA-Factory; the token weights come from
:func:`datamind_ext.losses.weighted_nll`, the same function the RL stage's SFT term uses.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from datamind_ext.losses import TOKEN_WEIGHTINGS, TokenWeighting, masked_token_mean, weighted_nll

IGNORE_INDEX = -100


def token_log_probs(logits: Tensor, shift_labels: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """log p(label) per position (0 where the label is ignored), computed in float32."""
    vocab = logits.shape[-1]
    nll = F.cross_entropy(
        logits.float().reshape(-1, vocab), shift_labels.reshape(-1), ignore_index=ignore_index, reduction="none"
    )
    return -nll.reshape(shift_labels.shape)


def token_weighted_causal_lm_loss(
    logits: Tensor,
    labels: Tensor | None,
    vocab_size: int | None = None,
    num_items_in_batch: Tensor | int | None = None,
    ignore_index: int = IGNORE_INDEX,
    shift_labels: Tensor | None = None,
    *,
    weighting: TokenWeighting = "nll",
    **_: Any,
) -> Tensor:
    """Weighted NLL of the next token, reduced like transformers' built-in loss.

    With ``num_items_in_batch`` (gradient accumulation) the sum is divided by the number of
    trained tokens of the whole step; otherwise it is the mean over this batch's trained tokens.
    With ``weighting="nll"`` it equals ``ForCausalLMLoss``.
    """
    if shift_labels is None:
        if labels is None:
            raise ValueError("labels or shift_labels are required")
        shift_labels = F.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    shift_labels = shift_labels.to(logits.device)
    mask = shift_labels != ignore_index
    per_token = weighted_nll(token_log_probs(logits, shift_labels, ignore_index), weighting)
    return masked_token_mean(per_token, mask, denom=num_items_in_batch)


def make_loss_function(weighting: TokenWeighting) -> Callable[..., Tensor]:
    """The ``model.loss_function`` for one weighting (a partial of a module function: picklable)."""
    if weighting not in TOKEN_WEIGHTINGS:
        raise ValueError(f"unknown token weighting {weighting!r}; choose one of: {', '.join(TOKEN_WEIGHTINGS)}")
    return partial(token_weighted_causal_lm_loss, weighting=weighting)


__all__ = ["IGNORE_INDEX", "make_loss_function", "token_log_probs", "token_weighted_causal_lm_loss"]

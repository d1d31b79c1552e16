"""Install an SFT token-weighted loss into a LLaMA-Factory run through a trainer callback.

LLaMA-Factory's CLI cannot take a custom loss, but its ``run_exp`` accepts callbacks, and
transformers 5 models expose a public ``loss_function`` setter that the forward pass calls with
unshifted labels. Setting it at ``on_train_begin`` changes the loss without a patch and without
re-creating LLaMA-Factory's workflow; LoRA models are unwrapped to the base model first.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from datamind_ext.losses import TokenWeighting
from datamind_ext.sft.causal_lm_loss import make_loss_function


def _base_model(model: Any) -> Any:
    """The model whose forward computes the loss (PEFT and DDP/compile wrappers removed)."""
    while True:
        if hasattr(model, "get_base_model"):
            model = model.get_base_model()
        elif hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


class TokenWeightedLossCallback(TrainerCallback):
    """Sets ``model.loss_function`` to the weighted NLL of :mod:`datamind_ext.losses`."""

    def __init__(self, weighting: TokenWeighting) -> None:
        self.weighting = weighting
        self.installed_on: str | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if model is None:
            raise RuntimeError("the trainer passed no model to callbacks; cannot install the SFT loss")
        base = _base_model(model)
        if not hasattr(type(base), "loss_function"):
            raise RuntimeError(f"{type(base).__name__} has no loss_function to replace (transformers>=5 models do)")
        base.loss_function = make_loss_function(self.weighting)
        self.installed_on = type(base).__name__

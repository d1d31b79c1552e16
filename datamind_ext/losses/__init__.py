"""Pure torch losses of the DataMind recipe: SFT token weighting, γ schedules, combined objective.

This package imports torch only; verl and LLaMA-Factory glue lives in ``datamind_ext.integrations``.
"""

from datamind_ext.losses.token_weighting import TOKEN_WEIGHTINGS, TokenWeighting, masked_token_mean, weighted_nll

__all__ = ["TOKEN_WEIGHTINGS", "TokenWeighting", "masked_token_mean", "weighted_nll"]

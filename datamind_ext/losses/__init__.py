"""Pure torch losses of the DataMind recipe: SFT token weighting, γ schedules, combined objective.

This package imports torch only; verl and LLaMA-Factory glue lives in ``datamind_ext.integrations``.
"""

from datamind_ext.losses.combined import SftRlLossConfig, dapo_token_losses, sft_rl_loss
from datamind_ext.losses.schedules import (
    SCHEDULES,
    BatchStats,
    GammaSchedule,
    ScheduleConfig,
    build_schedule,
    cosine_value,
)
from datamind_ext.losses.token_weighting import (
    TOKEN_WEIGHTINGS,
    TokenWeighting,
    masked_token_mean,
    weighted_nll,
)

__all__ = [
    "SCHEDULES",
    "TOKEN_WEIGHTINGS",
    "BatchStats",
    "GammaSchedule",
    "ScheduleConfig",
    "SftRlLossConfig",
    "TokenWeighting",
    "build_schedule",
    "cosine_value",
    "dapo_token_losses",
    "masked_token_mean",
    "sft_rl_loss",
    "weighted_nll",
]

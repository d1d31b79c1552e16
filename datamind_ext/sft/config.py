"""The ``datamind:`` block of an SFT config, and its separation from LLaMA-Factory's keys.

An SFT config is a normal LLaMA-Factory yaml plus one ``datamind:`` block. The block is
validated here (unknown keys are errors) and removed before LLaMA-Factory parses the rest, so
LLaMA-Factory never sees a key it does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from datamind_ext.config import StrictModel, parse_config
from datamind_ext.errors import UserError

BLOCK_KEY = "datamind"
#: written to the output folder when ``max_train_s`` is set (by the LLaMA-Factory time-budget callback)
TIME_BUDGET_FILE = "time_budget.json"
#: written to the output folder: the run's LLaMA-Factory keys with the exported dataset, which
#: ``llamafactory-cli train`` runs as is
LLAMAFACTORY_CONFIG = "llamafactory_train.yaml"
#: SFT loss variants: LLaMA-Factory's own cross-entropy, or a token weighting of
#: :func:`datamind_ext.losses.weighted_nll` (the same functions as the RL stage's SFT term).
SFTLoss = Literal["ce", "chord_phi", "dft"]


class DatamindSFTConfig(StrictModel):
    """What datamind_ext adds to a LLaMA-Factory SFT run."""

    loss: SFTLoss = Field("ce", description="ce (LLaMA-Factory's loss), chord_phi or dft token weighting")
    trajectories: list[str] = Field(
        default_factory=list,
        description="JSONL files of datamind_ext trajectories; checked, length-filtered and exported as the "
        "training dataset (then LLaMA-Factory's `dataset` must not be set)",
    )
    dataset_name: str = Field("datamind", min_length=1, description="name of the exported dataset")
    export_dir: str | None = Field(None, description="where the dataset is exported (default <output_dir>/datamind_dataset)")
    max_tokens: int | None = Field(
        None, gt=0, description="drop longer trajectories (default: cutoff_len; larger would be truncated)"
    )
    max_observation_chars: int | None = Field(
        None, gt=0, description="shorten longer interpreter observations (head + tail kept) before the length filter"
    )
    length_batches: bool = Field(
        False, description="export the rows as batches of per_device_train_batch_size rows of similar length in a "
        "seeded random order (seed: data_seed, else seed) and train with train_sampling_strategy=sequential: "
        "group_by_length's padding saving without its long-to-short sweeps; one training process")
    min_trajectories: int = Field(1, ge=1, description="fail if fewer trajectories survive the checks")
    max_train_s: float | None = Field(
        None, gt=0, description="stop training after this many seconds (max_steps still sets the LR schedule); "
        "the stop is logged and written to <output_dir>/time_budget.json")
    template_check_rows: int = Field(
        16, ge=0, description="rows rendered by both LLaMA-Factory's template and the model's chat template, "
        "which must agree token for token before training starts (0 = skip)"
    )


def split_sft_config(raw: Any, where: str) -> tuple[dict[str, Any], DatamindSFTConfig]:
    """Split a loaded SFT yaml into (LLaMA-Factory's arguments, our validated block)."""
    if not isinstance(raw, Mapping):
        raise UserError(f"{where}: an SFT config must be a mapping of LLaMA-Factory keys plus a `{BLOCK_KEY}:` block")
    lf_args = {str(k): v for k, v in raw.items() if k != BLOCK_KEY}
    block = parse_config(DatamindSFTConfig, raw.get(BLOCK_KEY), f"{where}: {BLOCK_KEY}")
    return lf_args, block

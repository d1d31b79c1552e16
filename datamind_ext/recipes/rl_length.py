"""How many steps an RL run will take, checked before verl starts.

Why: verl 0.9.1's v1 trainer stops at whichever comes first, ``trainer.total_training_steps`` or
``trainer.total_epochs`` passes over the data (``PPOTrainerBase.fit``: ``while current_epoch <
total_epochs and global_steps <= total_training_steps``, with ``steps_per_epoch = len(dataset) //
data.train_batch_size``). With ``total_epochs: 1``, 350 steps at batch 16 need ≥ 5,600 prompts;
with fewer, the run silently ends early and the γ schedule (decaying over 350 steps) never reaches
its valley. Checking needs only three keys and the parquet's row count, so verl is not imported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from datamind_ext.errors import UserError

KEYS = ("data.train_batch_size", "trainer.total_epochs", "trainer.total_training_steps")


def length_settings(config: Path, overrides: Sequence[str]) -> dict[str, int | None]:
    """The three keys from the RL yaml with hydra-style overrides (``key=v``, ``+key=v``, ``++key=v``) applied."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(config)
    for o in overrides:
        key, _, value = o.lstrip("+").partition("=")
        if key in KEYS:
            OmegaConf.update(cfg, key, OmegaConf.from_dotlist([f"v={value}"]).v, force_add=True)
    out: dict[str, int | None] = {}
    for key in KEYS:
        value = OmegaConf.select(cfg, key, default="<unset>")
        if value == "<unset>":
            raise UserError(f"{config}: set {key} (the RL run length is checked from {', '.join(KEYS)})")
        out[key] = None if value is None else int(value)
    return out


def check_rl_length(config: Path, overrides: Sequence[str], train_parquet: Path) -> str:
    """One line saying what the run will do; :class:`UserError` when the epoch cap cuts the step count."""
    import pyarrow.parquet as pq

    s = length_settings(config, overrides)
    batch, epochs, steps = s["data.train_batch_size"], s["trainer.total_epochs"], s["trainer.total_training_steps"]
    assert batch is not None and epochs is not None
    prompts = pq.ParquetFile(train_parquet).metadata.num_rows
    per_epoch = prompts // batch
    if per_epoch == 0:
        raise UserError(f"{train_parquet}: {prompts} RL prompts, fewer than data.train_batch_size={batch}")
    if steps is not None and per_epoch * epochs < steps:
        need = math.ceil(steps / per_epoch)
        raise UserError(f"RL would stop after {per_epoch * epochs} of trainer.total_training_steps={steps} steps: "
                        f"{prompts} prompts // batch {batch} = {per_epoch} steps per epoch × trainer.total_epochs="
                        f"{epochs}; set trainer.total_epochs={need} (rl.overrides) or synthesize ≥ "
                        f"{math.ceil(steps / epochs) * batch} prompts")
    run = steps if steps is not None else per_epoch * epochs
    return (f"RL plan: {run} steps = {run / per_epoch:.2f} passes over {prompts} prompts (batch {batch}, "
            f"{per_epoch} steps per epoch; verl may drop over-long prompts first)")

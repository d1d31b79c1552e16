"""Stop an SFT run at a wall-clock budget, through a trainer callback.

Why: the CPU quickstart promises a total time, and a step costs 2-4x more on a loaded machine
than on an idle one. ``max_steps`` still sets the learning-rate schedule; the budget only ends the
run early (LLaMA-Factory then saves the model as at a normal end) and says so in the log and in
``time_budget.json`` next to the model, so a summary can report it instead of hiding it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from datamind_ext.sft.config import TIME_BUDGET_FILE


class TimeBudgetCallback(TrainerCallback):
    """Ends training once ``max_train_s`` seconds have passed since the first step began."""

    def __init__(self, max_train_s: float) -> None:
        self.max_train_s = max_train_s
        self.started: float | None = None
        self.stopped_at_step: int | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.monotonic()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.started is None or time.monotonic() - self.started < self.max_train_s:
            return
        if self.stopped_at_step is None:
            self.stopped_at_step = int(state.global_step)
            print(f"[datamind sft] time budget of {self.max_train_s:.0f} s reached at step {state.global_step}"
                  f"/{state.max_steps}: stopping (the model is saved as at a normal end)", flush=True)
        control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        elapsed_s = time.monotonic() - self.started if self.started is not None else 0.0
        report = {"max_train_s": self.max_train_s, "elapsed_s": round(elapsed_s, 1), "steps_done": int(state.global_step),
                  "max_steps": int(state.max_steps), "stopped_early": self.stopped_at_step is not None}
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / TIME_BUDGET_FILE).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")

"""The one interpreter configuration block, the same in synthesis, evaluation, replay and verl.

``SynthConfig.interpreter``, ``EvalConfig.interpreter``, the RL config's ``datamind.interpreter``
and ``datamind-ext rollout`` all take this model: per-cell :class:`Limits` plus the settings of
the pool the sessions are forked from. It is validated where it is read (unknown keys are
errors naming the key), never passed to the pool as a raw dict.
"""

from __future__ import annotations

from pydantic import Field

from datamind_ext.config import StrictModel
from datamind_ext.interpreter.limits import Limits


class InterpreterConfig(StrictModel):
    """Sessions' limits and the pool behind them (see :class:`~datamind_ext.interpreter.InterpreterPool`)."""

    limits: Limits = Field(default_factory=Limits, description="per-cell and per-session limits")
    max_sessions: int = Field(256, ge=1, description="open sessions at most (opening more waits)")
    max_concurrency: int | None = Field(None, ge=1, description="cells running at once (default: CPU cores)")
    memory_budget_mib: int | None = Field(
        None, gt=0, description="total unique memory of the sessions; above it idle ones are evicted (LRU)")
    spare_sessions: int = Field(4, ge=0, description="sessions forked ahead of time")
    isolate_network: bool = Field(True, description="sessions in a network namespace with no interface up")
    isolate_user: bool = Field(True, description="one unprivileged uid per session when running as root")
    start_timeout_s: float = Field(180.0, gt=0, description="time for the warm zygote to start")
    preload: list[str] | None = Field(
        None, description="modules the warm zygote imports (and warms up) once for every session (default: numpy, "
        "pandas, scipy, scikit-learn, matplotlib, openpyxl, pyarrow, sqlite3); a cell may import others, at its own "
        "cost. A shorter list is a smaller image to fork: code known to need only pandas starts sessions faster")

    def pool_kwargs(self) -> dict[str, object]:
        """Keyword arguments of :class:`~datamind_ext.interpreter.InterpreterPool`."""
        kwargs = {"limits": self.limits, **self.model_dump(exclude={"limits"})}
        if kwargs["preload"] is None:
            del kwargs["preload"]  # the pool's default list
        return kwargs

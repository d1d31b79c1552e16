"""γ(t) schedules for ``L = γ(t)·L_SFT + (1−γ(t))·L_RL``, selected by name in config.

Why a schedule at all: the paper reports that zero-RL, SFT-then-RL, γ=0, γ=0.2 and a fixed γ=0.8
all collapsed and only a γ decaying from 0.9 to 0.05 trained stably. The cosine default
reproduces the reference's ``mu_schedule_function`` value for value (step counted from 1):
t=1→0.900, 100→0.740, 175→0.475, 250→0.210, ≥350→0.05.

Schedules are pure functions of the trainer step and, for the adaptive one, of batch statistics
computed once per update (so every data-parallel rank and micro-batch sees the same γ). Each
returns ``(gamma, metrics)`` so the decision is visible in the training logs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pydantic import Field

from datamind_ext.config import StrictModel
from datamind_ext.registry import Registry


@dataclass(frozen=True)
class BatchStats:
    """Batch statistics an adaptive schedule reacts to (None when not measured)."""

    success_rate: float | None = None  # fraction of the step's RL trajectories with positive reward
    entropy: float | None = None  # token-mean policy entropy (nats) over the step's RL tokens


class GammaSchedule(Protocol):
    def __call__(self, step: int, stats: BatchStats | None = None) -> tuple[float, dict[str, float]]: ...


class ScheduleConfig(StrictModel):
    """The ``schedule`` block; the fields a schedule does not use are ignored by it."""

    name: str = "cosine"
    peak: float = Field(0.9, ge=0.0, le=1.0)
    valley: float = Field(0.05, ge=0.0, le=1.0)
    warmup_steps: int = Field(0, ge=0)
    decay_steps: int = Field(350, ge=1)
    value: float = Field(0.5, ge=0.0, le=1.0, description="γ of the constant schedule")
    success_floor: float = Field(0.1, ge=0.0, le=1.0, description="adaptive: success rate below which γ rises")
    entropy_floor_nats: float = Field(0.3, ge=0.0, description="adaptive: entropy below which γ rises")
    ceiling: float = Field(0.9, ge=0.0, le=1.0, description="adaptive: γ at full collapse")


SCHEDULES: Registry[Callable[[ScheduleConfig], GammaSchedule]] = Registry("gamma schedule")


def _warmup(step: int, cfg: ScheduleConfig) -> float | None:
    """Linear ramp from 0 to ``peak`` over the warm-up steps, as the reference does; else None."""
    if step < cfg.warmup_steps:
        return cfg.peak * step / cfg.warmup_steps
    return None


def cosine_value(step: int, cfg: ScheduleConfig) -> float:
    """The reference's ``mu_schedule_function(t, warmup, decay, peak, valley)``."""
    ramp = _warmup(step, cfg)
    if ramp is not None:
        return ramp
    if step >= cfg.warmup_steps + cfg.decay_steps:
        return cfg.valley
    frac = (step - cfg.warmup_steps) / cfg.decay_steps
    return cfg.valley + (cfg.peak - cfg.valley) * 0.5 * (1.0 + math.cos(math.pi * frac))


def linear_value(step: int, cfg: ScheduleConfig) -> float:
    ramp = _warmup(step, cfg)
    if ramp is not None:
        return ramp
    if step >= cfg.warmup_steps + cfg.decay_steps:
        return cfg.valley
    frac = (step - cfg.warmup_steps) / cfg.decay_steps
    return cfg.peak - (cfg.peak - cfg.valley) * frac


@SCHEDULES.register("cosine")
def cosine(cfg: ScheduleConfig) -> GammaSchedule:
    return lambda step, stats=None: (cosine_value(step, cfg), {})


@SCHEDULES.register("linear")
def linear(cfg: ScheduleConfig) -> GammaSchedule:
    return lambda step, stats=None: (linear_value(step, cfg), {})


@SCHEDULES.register("constant")
def constant(cfg: ScheduleConfig) -> GammaSchedule:
    return lambda step, stats=None: (cfg.value, {})


def collapse_severity(value: float | None, floor: float) -> float:
    """0 at or above ``floor``, rising linearly to 1 at zero; 0 when not measured."""
    if value is None or floor <= 0.0:
        return 0.0
    return min(max((floor - value) / floor, 0.0), 1.0)


@SCHEDULES.register("adaptive")
def adaptive(cfg: ScheduleConfig) -> GammaSchedule:
    """Cosine decay, pulled back towards ``ceiling`` when the policy collapses.

    The two collapse modes the paper describes are reward collapse (almost no trajectory of the
    batch succeeds, so group advantages vanish and the SFT term is the only signal left) and
    entropy collapse (the policy turns deterministic and stops exploring). Each has a severity in
    [0, 1]: ``(floor − x) / floor`` clipped, for the batch success rate and the token-mean entropy.
    With ``s`` the larger of the two, ``γ = base + (ceiling − base)·s`` where ``base`` is the
    cosine value: a healthy batch follows the cosine schedule exactly, a fully collapsed one gets
    ``ceiling``. γ never drops below the cosine value. Metrics: the base value and both severities.
    """

    def schedule(step: int, stats: BatchStats | None = None) -> tuple[float, dict[str, float]]:
        base = cosine_value(step, cfg)
        stats = stats or BatchStats()
        s_success = collapse_severity(stats.success_rate, cfg.success_floor)
        s_entropy = collapse_severity(stats.entropy, cfg.entropy_floor_nats)
        severity = max(s_success, s_entropy)
        gamma = base + max(cfg.ceiling - base, 0.0) * severity
        return gamma, {
            "gamma_base": base,
            "collapse_success": s_success,
            "collapse_entropy": s_entropy,
        }

    return schedule


def build_schedule(cfg: ScheduleConfig) -> GammaSchedule:
    """The schedule named by ``cfg.name`` (a :class:`UserError` lists the choices if unknown)."""
    return SCHEDULES.get(cfg.name)(cfg)

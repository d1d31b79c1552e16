"""γ schedules: values at the paper's check-points against an independent computation."""

from __future__ import annotations

import math

import pytest

from datamind_ext.errors import UserError
from datamind_ext.losses import SCHEDULES, BatchStats, ScheduleConfig, build_schedule

STEPS = [1, 100, 175, 250, 350, 500]


def reference_mu(t: int, warmup: int = 0, decay: int = 350, peak: float = 0.9, valley: float = 0.05) -> float:
    """mu_schedule_function of the reference (Trinity-RFT CHORD), re-typed from its definition."""
    if t < warmup:
        return peak * t / warmup
    if t >= warmup + decay:
        return valley
    return valley + (peak - valley) * 0.5 * (1 + math.cos(math.pi * (t - warmup) / decay))


def test_cosine_default_matches_reference_and_published_values() -> None:
    schedule = build_schedule(ScheduleConfig())
    published = {1: 0.900, 100: 0.740, 175: 0.475, 250: 0.210, 350: 0.05, 500: 0.05}
    for t in STEPS:
        gamma, _ = schedule(t)
        assert gamma == pytest.approx(reference_mu(t), abs=1e-12)
        assert round(gamma, 3) == pytest.approx(published[t], abs=1e-9)


def test_cosine_with_warmup_ramps_from_zero() -> None:
    cfg = ScheduleConfig(warmup_steps=10, decay_steps=100)
    schedule = build_schedule(cfg)
    for t in [0, 5, 10, 60, 110, 200]:
        assert schedule(t)[0] == pytest.approx(reference_mu(t, warmup=10, decay=100), abs=1e-12)


def test_linear_and_constant() -> None:
    linear = build_schedule(ScheduleConfig(name="linear"))
    for t in STEPS:
        want = 0.05 if t >= 350 else 0.9 - 0.85 * t / 350
        assert linear(t)[0] == pytest.approx(want, abs=1e-12)
    const = build_schedule(ScheduleConfig(name="constant", value=0.8))
    assert [const(t)[0] for t in STEPS] == [0.8] * len(STEPS)


def test_adaptive_follows_cosine_when_healthy_and_rises_on_collapse() -> None:
    cfg = ScheduleConfig(name="adaptive", success_floor=0.2, entropy_floor_nats=0.5, ceiling=0.9)
    schedule = build_schedule(cfg)
    healthy = BatchStats(success_rate=0.6, entropy=1.2)
    for t in STEPS:
        gamma, metrics = schedule(t, healthy)
        assert gamma == pytest.approx(reference_mu(t), abs=1e-12)
        assert metrics == {"gamma_base": pytest.approx(reference_mu(t)), "collapse_success": 0.0, "collapse_entropy": 0.0}
    # success collapsed to 0.05 at step 500: severity (0.2-0.05)/0.2 = 0.75
    gamma, metrics = schedule(500, BatchStats(success_rate=0.05, entropy=1.2))
    assert metrics["collapse_success"] == pytest.approx(0.75)
    assert gamma == pytest.approx(0.05 + (0.9 - 0.05) * 0.75)
    # entropy collapsed to 0.1 nats: severity (0.5-0.1)/0.5 = 0.8, the larger one wins
    gamma, metrics = schedule(500, BatchStats(success_rate=0.05, entropy=0.1))
    assert metrics["collapse_entropy"] == pytest.approx(0.8)
    assert gamma == pytest.approx(0.05 + 0.85 * 0.8)
    # unmeasured statistics never raise γ
    assert schedule(500)[0] == pytest.approx(0.05)


def test_registry_lists_choices_for_unknown_name() -> None:
    assert {"cosine", "linear", "constant", "adaptive"} <= set(SCHEDULES.names())
    with pytest.raises(UserError, match="adaptive"):
        build_schedule(ScheduleConfig(name="cosinus"))


def test_config_rejects_unknown_keys() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        ScheduleConfig(peek=0.9)  # type: ignore[call-arg]

"""The small statistics a run summary needs to say which differences are noise.

Why here and not in the summary: the summary reads files and formats tables; these are the
figures themselves (confidence intervals, noise bands, paired before/after counts), unit-tested on
their own so the summary's claims ("within noise", "not comparable") rest on checked arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

#: two-sided 95 % normal quantile
Z95 = 1.96


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95 % Wilson score interval of a pass rate (stays inside [0, 1], sensible at 0/n and n/n)."""
    if n <= 0:
        raise ValueError("n must be positive")
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} not in 0..{n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_band(values: Iterable[float], z: float = Z95) -> dict[str, float | int]:
    """Mean, sample standard deviation and the 95 % half-width of the mean (z·sd/√n) of ``values``."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        raise ValueError("no values")
    mean = sum(xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "sd": sd, "half_width": z * sd / math.sqrt(n) if n > 1 else math.inf, "n": n}


def paired_change(before: Mapping[str, bool], after: Mapping[str, bool]) -> dict[str, Any]:
    """Before/after correctness on the tasks both runs scored: how many flipped each way.

    Why paired: both checkpoints answer the same held-out tasks, so the flips say more than two
    independent rates. ``within_noise`` is a sign test (normal approximation, 95 %) on the flips:
    a change is only called real when the net flips exceed ``1.96·√flips``.
    """
    common = sorted(set(before) & set(after))
    gained = sum(1 for k in common if after[k] and not before[k])
    lost = sum(1 for k in common if before[k] and not after[k])
    flips = gained + lost
    return {"n": len(common), "gained": gained, "lost": lost,
            "within_noise": flips == 0 or abs(gained - lost) <= Z95 * math.sqrt(flips)}


def comparability(sft_budget: Mapping[str, Any] | None) -> tuple[bool, str]:
    """Whether a run's figures compare with other runs of the recipe, and why not.

    SFT is sized by steps (and a seeded data order), so two runs train the same model whatever the
    machine's speed, unless the wall-clock safety net ended SFT early: then the model trained on
    fewer steps than the recipe says and its figures describe this machine, not the recipe.
    """
    if sft_budget and sft_budget.get("stopped_early"):
        return False, (f"SFT was stopped by its wall-clock safety net ({sft_budget['max_train_s']:.0f} s) after "
                       f"{sft_budget['steps_done']} of {sft_budget['max_steps']} steps: this machine trained slower "
                       "than the safety net allows, so the figures are NOT COMPARABLE with other runs of this recipe")
    return True, ""

"""The combined objective on hand-built tensors vs an element-by-element computation."""

from __future__ import annotations

import math

import pytest
import torch

from datamind_ext.losses import SftRlLossConfig, sft_rl_loss

# rows 0-1: rollouts (row 1 is void: no RL tokens), rows 2-3: expert trajectories
LOGP = [[-0.5, -1.0, -0.2, -2.0], [-0.3, -0.4, -0.9, -1.1], [-0.05, -0.7, -1.5, -0.3], [-2.5, -0.1, -0.6, -0.8]]
OLD = [[-0.9, -0.7, -0.2, -1.0], [-0.3, -0.4, -0.9, -1.1], [-0.05, -0.7, -1.5, -0.3], [-2.5, -0.1, -0.6, -0.8]]
ADV = [[1.0, -1.0, 0.5, -2.0], [0.7, 0.7, 0.7, 0.7], [0.0] * 4, [0.0] * 4]
RL = [[1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
SFT = [[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 1], [0, 1, 1, 0]]


def by_hand(gamma: float, weighting: str, low: float = 0.2, high: float = 0.28, c: float = 10.0):
    """Loss and d loss / d log p, one element at a time (gradient derived on paper)."""
    n_rl = sum(map(sum, RL))
    n_sft = sum(map(sum, SFT))
    pg = sft = 0.0
    grad = [[0.0] * 4 for _ in range(4)]
    for i in range(4):
        for t in range(4):
            lp, old, a = LOGP[i][t], OLD[i][t], ADV[i][t]
            if RL[i][t]:
                r = math.exp(lp - old)
                unclipped, clipped = -a * r, -a * min(max(r, 1 - low), 1 + high)
                token = max(unclipped, clipped)
                g = -a * r if unclipped >= clipped else 0.0  # clipped branch is constant in log p
                if a < 0 and token > -a * c:
                    token, g = -a * c, 0.0
                pg += token / n_rl
                grad[i][t] += (1 - gamma) * g / n_rl
            if SFT[i][t]:
                p = math.exp(lp)
                w = {"nll": 1.0, "chord_phi": p * (1 - p), "dft": p}[weighting]
                sft += -lp * w / n_sft
                grad[i][t] += gamma * (-w) / n_sft
    return gamma * sft + (1 - gamma) * pg, pg, sft, grad


def run(gamma: float, weighting: str = "nll", **denoms):
    lp = torch.tensor(LOGP, dtype=torch.float64, requires_grad=True)
    cfg = SftRlLossConfig(token_weighting=weighting)
    loss, metrics = sft_rl_loss(
        lp, torch.tensor(OLD, dtype=torch.float64), torch.tensor(ADV, dtype=torch.float64),
        torch.tensor(RL), torch.tensor(SFT), gamma, cfg, **denoms,
    )
    loss.backward()
    return loss, metrics, lp.grad


@pytest.mark.parametrize("weighting", ["nll", "chord_phi", "dft"])
@pytest.mark.parametrize("gamma", [0.0, 0.3, 0.9, 1.0])
def test_loss_and_gradient_match_hand_computation(gamma: float, weighting: str) -> None:
    loss, metrics, grad = run(gamma, weighting)
    want, want_pg, want_sft, want_grad = by_hand(gamma, weighting)
    assert loss.item() == pytest.approx(want, rel=1e-12)
    assert metrics["pg_loss"] == pytest.approx(want_pg, rel=1e-12)
    assert metrics["sft_loss"] == pytest.approx(want_sft, rel=1e-12)
    assert metrics["gamma"] == gamma and metrics["sft_tokens"] == 5 and metrics["rl_tokens"] == 4
    assert torch.allclose(grad, torch.tensor(want_grad, dtype=torch.float64), rtol=1e-10, atol=1e-15)


def test_clipping_is_exercised_and_reported() -> None:
    """Row 0: r=e^0.4 with A>0 (above 1+0.28), r=e^-0.3 and e^-1 with A<0 (below 1-0.2), r=1."""
    _, metrics, grad = run(0.0)
    assert metrics["pg_clipfrac"] == pytest.approx(0.75)
    assert grad[0, 0].item() == 0.0 and grad[0, 1].item() == 0.0 and grad[0, 3].item() == 0.0
    assert grad[0, 2].item() != 0.0
    assert metrics["pg_clipfrac_lower"] == 0.0


def test_dual_clip_bounds_negative_advantage_tokens() -> None:
    lp = torch.tensor([[0.0, 0.0]], requires_grad=True)
    old = torch.tensor([[-2.0, -0.1]])  # ratios e^2 = 7.39 and e^0.1 = 1.105
    adv = torch.tensor([[-1.0, -1.0]])
    cfg = SftRlLossConfig(clip_ratio_c=3.0)
    ones, zeros = torch.ones(1, 2), torch.zeros(1, 2)
    loss, metrics = sft_rl_loss(lp, old, adv, ones, zeros, 0.0, cfg)
    loss.backward()
    assert loss.item() == pytest.approx((3.0 + math.exp(0.1)) / 2)
    assert metrics["pg_clipfrac_lower"] == pytest.approx(0.5)
    assert lp.grad[0, 0].item() == 0.0 and lp.grad[0, 1].item() == pytest.approx(math.exp(0.1) / 2)


def test_void_and_expert_rows_get_no_policy_gradient_and_rollouts_no_sft() -> None:
    _, _, grad = run(0.5)
    assert torch.all(grad[1] == 0)  # void rollout: masked from RL, not an expert row
    _, _, grad0 = run(0.0)
    assert torch.all(grad0[2:] == 0)  # expert rows never enter the policy term


def test_global_denominators_scale_each_term() -> None:
    _, m_local, _ = run(0.5)
    loss_global, m_global, _ = run(0.5, rl_denom=8.0, sft_denom=10.0)
    assert m_global["pg_loss"] == pytest.approx(m_local["pg_loss"] * 4 / 8)
    assert m_global["sft_loss"] == pytest.approx(m_local["sft_loss"] * 5 / 10)
    assert loss_global.item() == pytest.approx(0.5 * m_global["sft_loss"] + 0.5 * m_global["pg_loss"])


def test_gamma_out_of_range_is_rejected() -> None:
    with pytest.raises(ValueError, match="gamma"):
        run(1.5)

"""Numerics of the SFT token weightings against an independent hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from datamind_ext.losses import masked_token_mean, weighted_nll

LOG_PROBS = [[-0.1, -2.0, -0.5], [-1.2, -0.05, -3.0]]
MASK = [[1, 0, 1], [1, 1, 0]]


def expected_loss_and_grad(weighting: str) -> tuple[float, list[list[float]]]:
    """Loss (masked mean) and d loss / d log p, computed element by element in plain Python."""
    n = sum(sum(r) for r in MASK)
    total = 0.0
    grads = []
    for lp_row, m_row in zip(LOG_PROBS, MASK):
        g_row = []
        for lp, m in zip(lp_row, m_row):
            p = math.exp(lp)
            w = {"nll": 1.0, "chord_phi": p * (1 - p), "dft": p}[weighting]
            total += m * (-lp) * w
            g_row.append(-m * w / n)  # weight is stop-gradient: only -log p is differentiated
        grads.append(g_row)
    return total / n, grads


@pytest.mark.parametrize("weighting", ["nll", "chord_phi", "dft"])
def test_weighted_nll_value_and_gradient(weighting: str) -> None:
    lp = torch.tensor(LOG_PROBS, dtype=torch.float64, requires_grad=True)
    loss = masked_token_mean(weighted_nll(lp, weighting), torch.tensor(MASK))
    want_loss, want_grad = expected_loss_and_grad(weighting)
    loss.backward()
    assert loss.item() == pytest.approx(want_loss, rel=1e-12)
    assert torch.allclose(lp.grad, torch.tensor(want_grad, dtype=torch.float64), rtol=1e-12, atol=0)


def test_weighted_nll_keeps_shape_and_rejects_unknown() -> None:
    lp = torch.full((2, 5), -0.3)
    assert weighted_nll(lp).shape == (2, 5)
    with pytest.raises(ValueError, match="chord_phi"):
        weighted_nll(lp, "focal")  # type: ignore[arg-type]


def test_global_denominator_makes_micro_batch_sums_exact() -> None:
    """Summing per-micro-batch means with the global token count gives the full-batch mean."""
    lp = torch.tensor(LOG_PROBS)
    mask = torch.tensor([[1, 0, 0], [1, 1, 1]])  # unequal token counts per micro-batch
    full = masked_token_mean(weighted_nll(lp), mask)
    global_tokens = mask.sum()
    parts = sum(masked_token_mean(weighted_nll(lp[i : i + 1]), mask[i : i + 1], global_tokens) for i in range(2))
    assert parts.item() == pytest.approx(full.item(), rel=1e-6)
    # averaging local means would weight the 1-token micro-batch as much as the 3-token one
    local = sum(masked_token_mean(weighted_nll(lp[i : i + 1]), mask[i : i + 1]) for i in range(2)) / 2
    assert local.item() != pytest.approx(full.item(), rel=1e-6)


def test_empty_mask_gives_zero_with_gradient_path() -> None:
    lp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    loss = masked_token_mean(weighted_nll(lp), torch.zeros(1, 2))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(lp.grad, torch.zeros(1, 2))

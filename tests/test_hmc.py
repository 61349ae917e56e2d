"""HMC transitions: they leave the path's density invariant, adapt their step size, and reject divergences."""

import math

import pytest
import torch

from pyrovae.hmc import PathPoint, StepSize, hmc_transition

SCALES = torch.tensor([0.3, 2.0], dtype=torch.float64)


def gaussian_path(u: torch.Tensor) -> PathPoint:
    """Base N(0, I) and target N(0, diag(SCALES^2)) (unnormalized), both with exact gradients."""
    base = -0.5 * (u ** 2).sum(-1)
    target = -0.5 * ((u / SCALES) ** 2).sum(-1)
    return PathPoint(u, base, target, -u, -u / SCALES ** 2)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_transitions_leave_each_density_of_the_path_invariant(beta):
    torch.manual_seed(0)
    precision = (1 - beta) + beta / SCALES ** 2  # f_beta is Gaussian with this diagonal precision
    point = gaussian_path(torch.randn(4000, 1, 2, dtype=torch.float64) / precision.sqrt())
    eps = torch.full((1, 1, 1), 0.4, dtype=torch.float64)
    accepted = []
    for _ in range(30):
        point, prob = hmc_transition(gaussian_path, point, beta, eps, leapfrog_steps=3)
        accepted.append(float(prob.mean()))
    variance = point.u.reshape(-1, 2).var(0)
    assert torch.allclose(variance * precision, torch.ones(2, dtype=torch.float64), atol=0.08)
    assert 0.3 < sum(accepted) / len(accepted) < 1.0


def test_step_sizes_move_towards_the_target_acceptance_per_point():
    step = StepSize.initial(2, 0.1, torch.zeros(1, dtype=torch.float64), target=0.65, rate=0.1)
    for _ in range(10):
        step.update(torch.tensor([[1.0, 0.0], [1.0, 0.2]], dtype=torch.float64))  # point 0 always accepts
    growth = step.value.reshape(-1) / 0.1
    assert float(growth[0]) == pytest.approx(math.exp(10 * 0.1 * 0.35))
    assert float(growth[1]) == pytest.approx(math.exp(10 * 0.1 * (0.1 - 0.65)))


def test_a_diverging_trajectory_is_rejected_and_the_state_kept():
    def exploding(u: torch.Tensor) -> PathPoint:
        nan = torch.full(u.shape[:-1], math.nan, dtype=u.dtype)
        return PathPoint(u, nan, nan, torch.full_like(u, math.nan), torch.full_like(u, math.nan))

    start = gaussian_path(torch.ones(3, 2, 2, dtype=torch.float64))
    point, prob = hmc_transition(exploding, start, 0.5, torch.full((1, 2, 1), 0.1, dtype=torch.float64), 2)
    assert torch.equal(point.u, start.u) and bool((prob == 0).all())

"""Hamiltonian Monte Carlo transitions along an annealing path, batched over chains and data points.

The states are unconstrained latent coordinates ``u`` of shape ``(C, N, D)``: ``C`` chains for each
of ``N`` data points, all moved at once. The density a transition leaves invariant is a member of
the geometric path between a normalized start density ``f_0`` and the unnormalized target
``f_T(u) = p(x, z(u)) |dz/du|`` (Neal 2001, "Annealed importance sampling", eq. 5; Gelman & Meng
1998):

    log f_beta(u) = (1 - beta) log f_0(u) + beta log f_T(u),   0 <= beta <= 1.

One transition is a leapfrog trajectory followed by a Metropolis test (Neal 2011, "MCMC using
Hamiltonian dynamics", section 5.2). Each data point has one step size, shared by its chains,
adapted after every transition towards an acceptance rate of 0.65, as Wu, Burda, Salakhutdinov
& Grosse (2017, "On the quantitative analysis of decoder-based generative models", section 4)
adapt theirs during annealing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple, Tuple

import torch

__all__ = ["PathPoint", "StepSize", "hmc_transition"]


class PathPoint(NamedTuple):
    """A batch of states with the two log densities of the path and their gradients, all detached.

    ``base`` is ``log f_0(u)`` and ``target`` is ``log f_T(u)``, each ``(C, N)``; the gradients
    are ``(C, N, D)`` like ``u``.
    """

    u: torch.Tensor
    base: torch.Tensor
    target: torch.Tensor
    grad_base: torch.Tensor
    grad_target: torch.Tensor

    def log_density(self, beta: float) -> torch.Tensor:
        """``log f_beta(u)`` on the geometric path (Neal 2001, eq. 5), shape ``(C, N)``."""
        return (1.0 - beta) * self.base + beta * self.target

    def grad(self, beta: float) -> torch.Tensor:
        """Gradient of :meth:`log_density` with respect to ``u``."""
        return (1.0 - beta) * self.grad_base + beta * self.grad_target

    def where(self, keep_new: torch.Tensor, new: "PathPoint") -> "PathPoint":
        """Elementwise choice: ``new`` where ``keep_new`` (``(C, N)`` booleans), else ``self``."""
        return PathPoint(*(torch.where(keep_new.reshape(keep_new.shape + (1,) * (a.dim() - keep_new.dim())), b, a)
                           for a, b in zip(self, new)))


#: ``evaluate(u) -> PathPoint``: both log densities and their gradients at ``u``.
Evaluate = Callable[[torch.Tensor], PathPoint]


@dataclass
class StepSize:
    """Leapfrog step size per data point, shape ``(1, N, 1)``, adapted towards ``target`` acceptance.

    After each transition ``log eps += rate * (mean acceptance probability over chains - target)``:
    a Robbins-Monro step on the log step size. Too many rejections shrink the step, too few grow
    it; the rate of 0.65 is optimal for HMC in high dimension (Beskos, Pillai, Roberts, Sanz-Serna
    & Stuart 2013, "Optimal tuning of the hybrid Monte Carlo algorithm"). The step size of a
    transition depends on earlier transitions, as in Wu et al. (2017); the adaptation is slow
    (``rate``), so its effect on the annealing weights is below the Monte-Carlo error.
    """

    log_eps: torch.Tensor
    target: float = 0.65
    rate: float = 0.05

    @classmethod
    def initial(cls, num_points: int, value: float, like: torch.Tensor, target: float, rate: float) -> "StepSize":
        """The same step size ``value`` for every point, on ``like``'s device and dtype."""
        return cls(torch.full((1, num_points, 1), math.log(value), dtype=like.dtype, device=like.device),
                   target, rate)

    @property
    def value(self) -> torch.Tensor:
        """The current step sizes, ``(1, N, 1)``."""
        return self.log_eps.exp()

    def update(self, accept_prob: torch.Tensor) -> None:
        """Move each point's log step size by ``rate`` times its chains' mean acceptance minus the target."""
        self.log_eps = self.log_eps + self.rate * (accept_prob.mean(0, keepdim=True) - self.target).unsqueeze(-1)


def _leapfrog(evaluate: Evaluate, start: PathPoint, momentum: torch.Tensor, beta: float, eps: torch.Tensor,
              steps: int) -> Tuple[PathPoint, torch.Tensor, torch.Tensor]:
    """``steps`` leapfrog steps of size ``eps`` from ``(start.u, momentum)`` (Neal 2011, eqs. 5.18-5.20).

    Returns the end point, its momentum, and which trajectories diverged (a non-finite position
    or gradient); a diverged trajectory stops where it was and is rejected by the caller.
    """
    point, p = start, momentum + 0.5 * eps * start.grad(beta)  # half step for the momentum
    diverged = torch.zeros(start.base.shape, dtype=torch.bool, device=start.u.device)
    for step in range(steps):
        u = point.u + eps * p  # full step for the position
        diverged |= ~torch.isfinite(u).all(-1) | ~torch.isfinite(p).all(-1)
        point = evaluate(torch.where(diverged.unsqueeze(-1), start.u, u))
        last = step == steps - 1
        p = p + (0.5 if last else 1.0) * eps * point.grad(beta)  # full steps, a half step at the end
    return point, p, diverged


def hmc_transition(evaluate: Evaluate, point: PathPoint, beta: float, eps: torch.Tensor,
                   leapfrog_steps: int) -> Tuple[PathPoint, torch.Tensor]:
    """One HMC transition leaving ``f_beta`` invariant, for every chain at once.

    Returns the new states and each chain's acceptance probability ``min(1, exp(-dH))``, where
    ``H(u, p) = -log f_beta(u) + |p|^2 / 2`` (Neal 2011, eqs. 5.1 and 5.22 with unit masses).
    A trajectory that diverged, or whose energy is not finite, is rejected.
    """
    p0 = torch.randn_like(point.u)
    new, p1, diverged = _leapfrog(evaluate, point, p0, beta, eps, leapfrog_steps)
    log_ratio = (new.log_density(beta) - point.log_density(beta)
                 - 0.5 * (p1.pow(2).sum(-1) - p0.pow(2).sum(-1)))
    log_ratio = torch.where(diverged | ~torch.isfinite(log_ratio), -math.inf, log_ratio)
    accept_prob = log_ratio.clamp(max=0.0).exp()
    accept = torch.rand_like(accept_prob) < accept_prob
    return point.where(accept, new), accept_prob

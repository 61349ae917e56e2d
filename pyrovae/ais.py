"""Annealed importance sampling (AIS) of log p(x) for a VAE, with adaptive HMC transitions.

AIS (Neal 2001, "Annealed importance sampling") moves ``C`` chains per data point from a start
density ``f_0`` (by default the encoder's ``q(z|x)``; or the prior ``p(z)``) to the unnormalized
posterior ``f_T(z) = p(x, z)`` through the geometric path ``f_beta = f_0^(1-beta) f_T^beta``,
``0 = beta_0 < ... < beta_T = 1``. Each chain carries the log weight

    log w = sum_{t=1..T} [log f_{beta_t}(z_{t-1}) - log f_{beta_{t-1}}(z_{t-1})]
          = sum_{t=1..T} (beta_t - beta_{t-1}) [log p(x, z_{t-1}) - log f_0(z_{t-1})]   (Neal 2001, eq. 3)

where ``z_t`` follows from ``z_{t-1}`` by a transition that leaves ``f_{beta_t}`` invariant (here
HMC, :mod:`pyrovae.hmc`). ``E[w] = p(x)``, so ``log mean_c w_c`` is a stochastic lower bound on
``log p(x)`` that, unlike importance sampling from ``q``, tightens as ``T`` grows even when ``q``
is poor (Wu, Burda, Salakhutdinov & Grosse 2017 use it to evaluate decoder-based models).

HMC needs a density on all of R^D, so chains move in unconstrained coordinates
``u = biject_to(support).inv(z)``; both path ends gain the same ``log |dz/du|``, which cancels in
the weights. Every posterior family (positive, unit-interval and simplex supports included)
therefore anneals the same way.

Run backwards from an exact posterior sample (``beta`` from 1 to 0), the same code estimates
``1 / p(x)``: the reverse chain of bidirectional Monte Carlo (:mod:`pyrovae.bdmc`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from torch.distributions import Distribution, biject_to

from .errors import PyroVAEError
from .hmc import PathPoint, StepSize, hmc_transition
from .joint import LogJoint, latent_site, traced
from .registry import Registry
from .validation import check_positive, check_positive_number

__all__ = ["AIS_STARTS", "SCHEDULES", "AISRun", "Annealing", "annealed_log_weights", "linear_schedule",
           "sigmoid_schedule"]

SCHEDULES: Registry[Callable[[int], torch.Tensor]] = Registry("AIS schedule")
"""Schedule name -> ``schedule(T)``: the ``T + 1`` inverse temperatures ``0 = beta_0 < ... < beta_T = 1``."""


@SCHEDULES.register("sigmoid")
def sigmoid_schedule(steps: int, delta: float = 4.0) -> torch.Tensor:
    """``beta_t = (s_t - s_0) / (s_T - s_0)``, ``s_t = sigmoid(delta (2t/T - 1))``, float64, ``(T + 1,)``.

    Grosse, Ghahramani & Adams (2015, "Sandwiching the marginal likelihood using bidirectional
    Monte Carlo", section 6): small steps near both ends of the path, where the densities change
    fastest relative to each other.
    """
    s = torch.linspace(-delta, delta, steps + 1, dtype=torch.float64).sigmoid()
    return (s - s[0]) / (s[-1] - s[0])


@SCHEDULES.register("linear")
def linear_schedule(steps: int) -> torch.Tensor:
    """Equally spaced ``beta_t = t / T``, float64, shape ``(T + 1,)``."""
    return torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)


def _latent_of(program: Callable[[Any], Callable]) -> Callable[..., Tuple[str, Distribution]]:
    """A start: the distribution of the latent site in a trace of ``program(vae)``, batch shape ``(C, N)``."""
    def start(vae, x: torch.Tensor, given: Dict[str, torch.Tensor], chains: int) -> Tuple[str, Distribution]:
        """``(latent site, its distribution)`` with ``chains`` draws per row of ``x``."""
        name, fn, _ = latent_site(traced(program(vae), chains, x, given))
        return name, fn

    return start


AIS_STARTS: Registry[Callable[..., Tuple[str, Distribution]]] = Registry("AIS start")
"""Start density name -> ``start(vae, x, given, chains) -> (latent site, distribution)``: ``posterior``
(the encoder's q(z|x), from a trace of the guide) or ``prior`` (p(z), from a trace of the model)."""
AIS_STARTS.register("posterior", _latent_of(lambda vae: vae.guide))
AIS_STARTS.register("prior", _latent_of(lambda vae: vae.model))


@dataclass(frozen=True)
class Annealing:
    """How AIS runs: path length, transitions and where it starts.

    :param steps: ``T``, the number of intermediate distributions (and of weight updates).
    :param leapfrog_steps: leapfrog steps per HMC transition.
    :param start: start density, a name in :data:`AIS_STARTS` (``posterior``: the encoder's q(z|x)).
    :param schedule: spacing of the inverse temperatures, a name in :data:`SCHEDULES`.
    :param step_size: initial leapfrog step size in unconstrained coordinates.
    :param target_accept: acceptance rate the step sizes adapt towards.
    :param adapt_rate: rate of the step-size adaptation (see :class:`pyrovae.hmc.StepSize`).
    """

    steps: int = 1000
    leapfrog_steps: int = 2
    start: str = "posterior"
    schedule: str = "sigmoid"
    step_size: float = 0.1
    target_accept: float = 0.65
    adapt_rate: float = 0.1

    def check(self) -> "Annealing":
        """Raise :class:`~pyrovae.errors.PyroVAEError` on unknown names or impossible numbers; return self."""
        check_positive(ais_steps=self.steps, leapfrog_steps=self.leapfrog_steps)
        AIS_STARTS.check(self.start)
        SCHEDULES.check(self.schedule)
        for name in ("step_size", "target_accept", "adapt_rate"):
            check_positive_number(name, getattr(self, name))
        if self.target_accept >= 1:
            raise PyroVAEError(f"target_accept is an acceptance rate below 1, got {self.target_accept!r}")
        return self

    def betas(self, reverse: bool = False) -> Tuple[float, ...]:
        """The inverse temperatures in the order a chain visits them (1 down to 0 when ``reverse``)."""
        betas = SCHEDULES[self.schedule](self.steps).tolist()
        return tuple(reversed(betas)) if reverse else tuple(betas)


@dataclass(frozen=True)
class AISRun:
    """What one annealing run over a batch of points returns.

    ``log_weights`` are ``(C, N)``: ``log mean_c exp`` of a column estimates ``log p(x_n)``
    (forward) or ``-log p(x_n)`` (reverse). ``accept_rate`` is the mean HMC acceptance probability
    per point and ``step_size`` each point's final leapfrog step size, both ``(N,)``. ``z`` holds
    the chains' last states, ``(C, N, *event)``: weighted by ``softmax(log_weights)`` over the
    chains, they are (approximate) samples of the posterior (forward) or of the start density.
    """

    log_weights: torch.Tensor
    accept_rate: torch.Tensor
    step_size: torch.Tensor
    z: torch.Tensor


def _path(vae, x: torch.Tensor, given: Dict[str, torch.Tensor], site: str, start: Distribution):
    """``(evaluate, transform)``: both path ends and their gradients in unconstrained coordinates."""
    transform, joint = biject_to(start.support), LogJoint(vae, x, given, site)

    def density(log_prob: Callable[[torch.Tensor], torch.Tensor], u: torch.Tensor) -> torch.Tensor:
        """The density ``log_prob`` of z, carried to u (change of variables)."""
        z = transform(u)
        return log_prob(z) + transform.log_abs_det_jacobian(u, z)  # density of u = density of z * |dz/du|

    def evaluate(u: torch.Tensor) -> PathPoint:
        """Both ends of the path and their gradients at ``u``."""
        with torch.enable_grad():
            # Two leaves, so that one backward pass gives the gradient of each end separately.
            u_base, u_target = u.detach().requires_grad_(), u.detach().requires_grad_()
            base, target = density(start.log_prob, u_base), density(joint, u_target)
            grad_base, grad_target = torch.autograd.grad(base.sum() + target.sum(), (u_base, u_target))
        return PathPoint(u.detach(), base.detach(), target.detach(), grad_base, grad_target)

    return evaluate, transform


def _anneal(evaluate, point: PathPoint, betas, settings: Annealing, tick: Callable[[], None]
            ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, PathPoint]:
    """Run the chains through ``betas`` from ``point``, accumulating Neal's (2001) eq. 3 log weights.

    Returns the log weights, the mean acceptance probability per point, the final step sizes and
    the last states.
    """
    log_w = torch.zeros_like(point.base)
    step = StepSize.initial(point.u.shape[1], settings.step_size, point.u, settings.target_accept,
                            settings.adapt_rate)
    accepted = torch.zeros_like(point.base)
    for t in range(1, len(betas)):
        # The geometric path's ratio f_t / f_{t-1} at the current state: (beta_t - beta_{t-1}) * log(f_T / f_0).
        log_w = log_w + (betas[t] - betas[t - 1]) * (point.target - point.base)
        if t < len(betas) - 1:  # the last state's transition would not change any weight
            point, accept_prob = hmc_transition(evaluate, point, betas[t], step.value, settings.leapfrog_steps)
            step.update(accept_prob)
            accepted = accepted + accept_prob
        tick()
    transitions = max(1, len(betas) - 2)
    return log_w, (accepted / transitions).mean(0), step.value.reshape(-1), point


@torch.no_grad()
def annealed_log_weights(vae, x: torch.Tensor, num_chains: int, settings: Annealing = Annealing(),
                         given: Optional[Dict[str, torch.Tensor]] = None, z_start: Optional[torch.Tensor] = None,
                         tick: Optional[Callable[[], None]] = None) -> AISRun:
    """AIS log weights of ``num_chains`` chains for each row of ``x`` (Neal 2001), as an :class:`AISRun`.

    Forward (default): the chains start from ``settings.start`` and ``log_mean_exp`` of the
    weights is a stochastic lower bound on ``log p(x)``. With ``z_start`` (``(C, N, *event)``,
    exact posterior samples, e.g. the latents that generated ``x``) the chains run backwards from
    ``beta = 1`` to 0 and the weights estimate ``1 / p(x)``: ``-log_mean_exp`` is a stochastic upper
    bound (Grosse et al. 2015, section 4). ``given``: further model arguments (labels ``y``);
    ``tick`` is called once per step (a progress bar). The caller fixes the KL weight to 1 and
    seeds the random stream.
    """
    settings.check()
    check_positive(num_chains=num_chains)
    given = given or {}
    site, start = AIS_STARTS[settings.start](vae, x, given, num_chains)
    evaluate, transform = _path(vae, x, given, site, start)
    z0 = start.sample() if z_start is None else z_start.to(x.device, x.dtype)
    log_w, accept_rate, step_size, last = _anneal(evaluate, evaluate(transform.inv(z0)),
                                                  settings.betas(reverse=z_start is not None), settings,
                                                  tick or (lambda: None))
    return AISRun(log_w, accept_rate, step_size, transform(last.u))

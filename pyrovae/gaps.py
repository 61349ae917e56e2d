"""The inference gaps of a VAE: what its posterior family costs, and what its encoder costs.

Cremer, Li & Duvenaud (2018, "Inference suboptimality in variational autoencoders", section 3)
split the distance between log p(x) and the ELBO of the encoder's ``q_phi(z|x)`` in two:

    log p(x) - ELBO[q_phi]  =  (log p(x) - ELBO[q*])  +  (ELBO[q*] - ELBO[q_phi])
       inference gap        =   approximation gap     +   amortization gap

where ``q*`` is the best posterior of the same family for that one point. The approximation gap
is what the family cannot express (change the family); the amortization gap is what one encoder
for all points loses against a fit per point (a bigger or longer-trained encoder, or a few
steps of per-point refinement, recover it).

``q*`` is found by local SVI: the encoder's raw outputs for the points, the parameters the
family's head turns into ``q(z|x)``, are optimized directly, one set per point, all points at
once, starting from the encoder's values. Any registered family works the same way, since the
head (``vae.posterior``) is reused as it is. ``log p(x)`` comes from a registered estimator
(:data:`pyrovae.evaluate.LOG_LIKELIHOOD_METHODS`, annealed importance sampling by default).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from tqdm.auto import tqdm

from .ais import Annealing
from .evaluate import DEFAULT_ROW_BUDGET, _at, _checked, _chunks, _true_bound, sampling_plan, seeded
from .importance import ImportanceDiagnostics, standard_error, summarize
from .joint import LogJoint, latent_site, traced
from .validation import check_positive, check_positive_number

__all__ = ["InferenceGaps", "LocalFit", "encoder_outputs", "fit_local", "inference_gaps"]


@dataclass(frozen=True)
class LocalFit:
    """How the per-point posteriors ``q*`` are fitted and how every ELBO is estimated.

    :param steps: Adam steps of local SVI.
    :param lr: Adam's initial learning rate on the raw head outputs (it decays linearly to 0).
    :param particles: reparameterized samples per point per step.
    :param elbo_particles: samples per point behind each reported ELBO (encoder and ``q*``).
    """

    steps: int = 1000
    lr: float = 0.1
    particles: int = 8
    elbo_particles: int = 1000

    def check(self) -> "LocalFit":
        """Raise :class:`~pyrovae.errors.PyroVAEError` on impossible numbers; return self."""
        check_positive(local_steps=self.steps, particles=self.particles, elbo_particles=self.elbo_particles)
        check_positive_number("lr", self.lr)
        return self


@torch.no_grad()
def encoder_outputs(vae, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The raw outputs ``(N, head_size)`` that ``vae``'s encoder gives its posterior head for rows ``x``.

    ``vae.posterior(raw)`` turns them into ``q(z|x)``; they are read as the head receives them
    (a forward pre-hook), so a conditional VAE's label input is included.
    """
    captured = []
    hook = vae.posterior.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    try:
        vae.encode(x, y)
    finally:
        hook.remove()
    return captured[-1].detach()


def _elbo(vae, joint: LogJoint, raw: torch.Tensor, particles: int, row_budget: int) -> torch.Tensor:
    """Per point, ``mean_l [log p(x, z_l) - log q(z_l)]`` with ``z_l ~ q = vae.posterior(raw)``, ``(N,)``.

    The ELBO of Kingma & Welling (2013, eq. 3) by Monte Carlo, drawn in chunks of at most
    ``row_budget`` decoder rows.
    """
    q = vae.posterior(raw)
    total = torch.zeros(raw.shape[0], dtype=raw.dtype, device=raw.device)
    for draws in _chunks(particles, max(1, row_budget // raw.shape[0])):
        z = q.sample((draws.stop - draws.start,))
        total += (joint(z) - q.log_prob(z)).sum(0)
    return total / particles


def fit_local(vae, joint: LogJoint, raw: torch.Tensor, settings: LocalFit, tick: Callable[[], None]) -> torch.Tensor:
    """Local SVI: maximize each point's ELBO over its own raw head outputs, from ``raw``; returns them.

    The points' objectives are independent and Adam acts coordinate by coordinate, so one
    optimizer over the ``(N, head_size)`` tensor is N separate fits. The gradient is the
    reparameterization gradient with the score term dropped ("sticking the landing", Roeder, Wu
    & Duvenaud 2017: ``log q`` is evaluated at detached parameters), whose variance vanishes as
    ``q`` approaches the posterior.
    """
    raw = raw.detach().clone().requires_grad_()
    optimizer = torch.optim.Adam([raw], lr=settings.lr)
    # The step size decays linearly to 0 (Robbins & Monro 1951 need it to shrink): the last steps
    # average the gradient noise out instead of wandering at a constant step's noise floor.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / settings.steps)
    for _ in range(settings.steps):
        with torch.enable_grad():
            z = vae.posterior(raw).rsample((settings.particles,))
            elbo = (joint(z) - vae.posterior(raw.detach()).log_prob(z)).mean(0).sum()
            raw.grad, = torch.autograd.grad(-elbo, raw)
        optimizer.step()
        schedule.step()
        tick()
    return raw.detach()


@dataclass(frozen=True)
class InferenceGaps:
    """The gaps of Cremer et al. (2018) on a set of points, means in nats per point.

    ``log_px`` is the registered ``method``'s estimate (with its ``log_px_diagnostics``),
    ``elbo_optimized`` the ELBO of the per-point fits ``q*`` and ``elbo_encoder`` that of the
    encoder's ``q(z|x)``. ``*_se`` are standard errors over the points; ``seconds_log_px`` and
    ``seconds_local`` the wall times of the log p(x) estimate and of the local fits with both ELBOs.
    """

    log_px: float
    elbo_optimized: float
    elbo_encoder: float
    approximation_gap_se: float
    amortization_gap_se: float
    num_points: int
    method: str
    num_samples: int
    local_steps: int
    seconds_log_px: float
    seconds_local: float
    log_px_diagnostics: Optional[ImportanceDiagnostics] = field(default=None, repr=False)

    @property
    def approximation_gap(self) -> float:
        """``log p(x) - ELBO[q*]``: what the posterior family cannot express."""
        return self.log_px - self.elbo_optimized

    @property
    def amortization_gap(self) -> float:
        """``ELBO[q*] - ELBO[q_phi]``: what sharing one encoder across points costs."""
        return self.elbo_optimized - self.elbo_encoder

    @property
    def inference_gap(self) -> float:
        """``log p(x) - ELBO[q_phi]``, the sum of the two gaps."""
        return self.log_px - self.elbo_encoder

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-safe dict for ``summary.json``, with the three gaps and the cost per point."""
        out = {k: v for k, v in asdict(self).items() if k != "log_px_diagnostics"}
        out = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in out.items()}
        diag = self.log_px_diagnostics
        return {**out, "approximation_gap": self.approximation_gap, "amortization_gap": self.amortization_gap,
                "inference_gap": self.inference_gap,
                "seconds_per_point": (self.seconds_log_px + self.seconds_local) / self.num_points,
                "log_px_diagnostics": None if diag is None else diag.to_dict()}


def _batch_elbos(vae, x: torch.Tensor, given: Dict[str, torch.Tensor], settings: LocalFit, row_budget: int,
                 tick: Callable[[], None]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per point of one batch: the encoder's ELBO and the ELBO of the local fit started from it."""
    joint = LogJoint(vae, x, given, latent_site(traced(vae.guide, 1, x, given))[0])
    raw = encoder_outputs(vae, x, given.get("y"))
    fitted = fit_local(vae, joint, raw, settings, tick)
    return (_elbo(vae, joint, raw, settings.elbo_particles, row_budget),
            _elbo(vae, joint, fitted, settings.elbo_particles, row_budget))


@torch.no_grad()
def inference_gaps(vae, data: torch.Tensor, method: str = "ais", num_samples: Optional[int] = None,
                   ais_steps: Optional[int] = None, annealing: Optional[Annealing] = None,
                   local: LocalFit = LocalFit(), seed: Optional[int] = None, labels=None, batch_size: int = 100,
                   row_budget: int = DEFAULT_ROW_BUDGET, progress: bool = False) -> InferenceGaps:
    """Approximation and amortization gaps (Cremer et al. 2018) of ``vae`` on the rows of ``data``.

    ``log p(x)`` by the registered ``method`` (default ``ais``, with ``num_samples`` chains and
    ``ais_steps`` steps; ``is`` uses ``num_samples`` importance samples); the per-point posteriors
    by local SVI as ``local`` says (:class:`LocalFit`). Each row costs the estimator's work plus
    ``local.steps`` gradient steps on ``local.particles`` samples: use a few hundred points.
    ``labels``: the rows' classes for a conditional VAE.
    """
    data = _checked(vae, data)
    spec, plan = sampling_plan(method, num_samples, batch_size=batch_size, rows=len(data), row_budget=row_budget,
                               diagnostics=True, ais_steps=ais_steps, annealing=annealing)
    local.check()
    results, seconds = [], [0.0, 0.0]
    units = spec.units(plan) + local.steps
    with seeded(seed, data.device), _true_bound(vae, data, labels) as y, \
            tqdm(total=math.ceil(len(data) / batch_size) * units, desc="inference gaps", disable=not progress,
                 dynamic_ncols=True) as bar:
        for rows in _chunks(len(data), batch_size):
            x, given, tick = data[rows], _at(y, rows), lambda: bar.update(1)
            began = time.perf_counter()
            estimate = spec.estimate(vae, x, given, contextlib.nullcontext(), plan, tick)
            middle = time.perf_counter()
            results.append((*estimate, *_batch_elbos(vae, x, given, local, row_budget, tick)))
            seconds[0] += middle - began
            seconds[1] += time.perf_counter() - middle
    return _summary(results, method, plan.num_samples, local.steps, seconds)


def _summary(results, method: str, num_samples: int, local_steps: int, seconds) -> InferenceGaps:
    """Means and standard errors over the points of the per-batch ``(log_px, ess, khat, elbo_q, elbo_q*)``."""
    log_px, ess, khat, encoder, fitted = (torch.cat([r[i] for r in results]).double().cpu() for i in range(5))
    return InferenceGaps(float(log_px.mean()), float(fitted.mean()), float(encoder.mean()),
                         standard_error(log_px - fitted), standard_error(fitted - encoder), len(log_px), method,
                         num_samples, local_steps, seconds[0], seconds[1],
                         summarize(log_px, khat, ess, num_samples))

"""Bidirectional Monte Carlo: log p(x) sandwiched between two stochastic bounds on simulated data.

Grosse, Ghahramani & Adams (2015, "Sandwiching the marginal likelihood using bidirectional
Monte Carlo") observe that for data simulated from the model, ``(z*, x) ~ p(z) p(x|z)``, the
latent ``z*`` is an exact sample of the posterior ``p(z|x)``. Annealed importance sampling
(:mod:`pyrovae.ais`) run forwards, from the start density to the posterior, has ``E[w] = p(x)``:
``log mean w`` is a stochastic lower bound. Run backwards from ``z*``, from the posterior to the
start density, its weights have ``E[w'] = 1 / p(x)`` (their section 4), so ``-log mean w'`` is a
stochastic upper bound. Both tighten as the number of steps grows; their distance bounds the
error of either on data like the simulated data (Wu, Burda, Salakhutdinov & Grosse 2017 use it to
validate AIS for decoder-based models).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

import pyro.poutine as poutine
import torch
from tqdm.auto import tqdm

from .ais import Annealing, annealed_log_weights
from .errors import PyroVAEError
from .evaluate import SamplingPlan, _at, _chunks, _device, _true_bound, sampling_plan, seeded
from .importance import log_mean_exp, standard_error
from .joint import latent_site
from .validation import check_positive

__all__ = ["BDMCResult", "bdmc", "simulate"]


@torch.no_grad()
def simulate(vae, n: int, labels: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(x, z)``: ``n`` draws ``z ~ p(z)``, then ``x ~ p(x|z)``, from the VAE's Pyro model.

    The model's observed site is sampled instead (``pyro.poutine.uncondition``); the placeholder
    rows it is given are never read. ``labels``: the classes of the rows (a conditional VAE).
    """
    check_positive(n=n)
    param = next(vae.parameters())
    placeholder = torch.zeros(n, vae.x_dim, device=param.device, dtype=param.dtype)
    with _true_bound(vae, placeholder, labels) as y:
        trace = poutine.trace(poutine.uncondition(vae.model)).get_trace(placeholder, **_at(y, slice(None)))
    data = [site["value"] for site in trace.nodes.values()
            if site["type"] == "sample" and site["infer"].get("was_observed")]
    if len(data) != 1:
        raise PyroVAEError(f"bidirectional Monte Carlo needs a model with one observed site, found {len(data)}")
    return data[0], latent_site(trace)[2]


@dataclass(frozen=True)
class BDMCResult:
    """Stochastic lower and upper bounds on the mean log p(x) of simulated data, nats per point.

    ``lower`` is forward AIS and ``upper`` reverse AIS from the true latents, means over the
    ``num_points`` simulated points (``*_se``: their standard errors over points);
    ``lower_per_point`` and ``upper_per_point`` hold the per-point bounds and ``data`` the simulated
    rows. ``seconds`` is the wall time of both directions.
    """

    lower: float
    upper: float
    lower_se: float
    upper_se: float
    num_points: int
    num_samples: int
    ais_steps: int
    leapfrog_steps: int
    seconds: float
    lower_per_point: torch.Tensor = field(repr=False)
    upper_per_point: torch.Tensor = field(repr=False)
    data: torch.Tensor = field(repr=False)

    @property
    def gap(self) -> float:
        """``upper - lower``: how far either bound can be from the truth, on average, on such data."""
        return self.upper - self.lower

    @property
    def seconds_per_point(self) -> float:
        """Wall time of both directions per simulated point."""
        return self.seconds / self.num_points

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-safe dict (no per-point tensors), with ``gap`` and ``seconds_per_point``."""
        out = {k: v for k, v in asdict(self).items() if not isinstance(v, torch.Tensor)}
        out = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in out.items()}
        return {**out, "gap": self.gap, "seconds_per_point": self.seconds_per_point}


def _sandwich(vae, x: torch.Tensor, z: torch.Tensor, y: Optional[torch.Tensor], plan: SamplingPlan,
              batch_size: int, tick: Callable[[], None]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per point: forward AIS ``log mean w`` (lower) and reverse AIS ``-log mean w'`` (upper)."""
    lower, upper = [], []
    chains, settings = plan.num_samples, plan.annealing
    for rows in _chunks(len(x), batch_size):
        given = _at(y, rows)
        forward = annealed_log_weights(vae, x[rows], chains, settings, given=given, tick=tick)
        start = z[rows].expand(chains, *z[rows].shape)  # every chain starts at the exact posterior sample
        reverse = annealed_log_weights(vae, x[rows], chains, settings, given=given, z_start=start, tick=tick)
        lower.append(log_mean_exp(forward.log_weights))
        upper.append(-log_mean_exp(reverse.log_weights))
    return torch.cat(lower), torch.cat(upper)


def bdmc(vae, n: int = 100, ais_steps: Optional[int] = None, num_samples: Optional[int] = None,
         seed: Optional[int] = None, annealing: Optional[Annealing] = None, labels: Optional[torch.Tensor] = None,
         batch_size: int = 100, progress: bool = False) -> BDMCResult:
    """Bidirectional Monte Carlo (Grosse et al. 2015) on ``n`` points simulated from ``vae``.

    Simulates ``(z*, x)`` from the model (:func:`simulate`), then runs annealed importance
    sampling with ``num_samples`` chains per point (default 16) and ``ais_steps`` steps (default
    1000; other settings from ``annealing``) forwards from the start density, and backwards from
    ``z*``. The mean of the forward estimates is a stochastic lower bound on the simulated data's
    mean log p(x), the mean of the reverse ones an upper bound; when they are close, AIS with these
    settings is accurate on data like these. ``seed`` fixes the simulation and the chains;
    ``labels`` are the classes of the ``n`` rows for a conditional VAE.
    """
    check_positive(n=n, batch_size=batch_size)
    _, plan = sampling_plan("ais", num_samples, ais_steps=ais_steps, annealing=annealing)
    began = time.perf_counter()
    with seeded(seed, _device(vae)):
        x, z = simulate(vae, n, labels)
        with _true_bound(vae, x, labels) as y, tqdm(total=2 * plan.annealing.steps * math.ceil(n / batch_size),
                                                   desc="BDMC", disable=not progress, dynamic_ncols=True) as bar:
            lower, upper = _sandwich(vae, x, z, y, plan, batch_size, lambda: bar.update(1))
    lower, upper = lower.double().cpu(), upper.double().cpu()
    return BDMCResult(float(lower.mean()), float(upper.mean()), standard_error(lower), standard_error(upper), n,
                      plan.num_samples, plan.annealing.steps, plan.annealing.leapfrog_steps,
                      time.perf_counter() - began, lower, upper, x)

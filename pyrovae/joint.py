"""A VAE's densities as functions of its latent, computed by Pyro from the ``model`` and ``guide``.

Annealed importance sampling and the per-point posterior fits of the inference gaps evaluate
``log p(x, z)`` at latents they choose themselves, thousands of times. :class:`LogJoint` gets it
from the VAE's own Pyro model: the latent site is conditioned on the given ``z``
(``pyro.poutine.condition``) and the trace's log densities are summed, so whatever the model
samples or observes (a learned prior, a class-conditional prior, any likelihood) is counted.

Latents carry a leading dimension of ``C`` draws per data point: ``z`` is ``(C, N, *event)`` and
every density ``(C, N)``. The draws are a vectorized plate left of the model's data plate, as
Pyro's own ``vectorize_particles`` lays them out, so the model must have one plate, as
:class:`~pyrovae.VAE` does.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample
from torch.distributions import Distribution

from .errors import PyroVAEError
from .estimators.weights import PARTICLE_PLATE
from .vae import VAE

__all__ = ["LogJoint", "latent_site", "traced"]

#: The draws' plate dim: left of the one data plate of a VAE (``max_plate_nesting = 1``).
DRAWS_DIM = -2


def traced(program: Callable, draws: int, x: torch.Tensor, given: Dict[str, torch.Tensor]):
    """The Pyro trace of ``program(x, **given)`` with ``draws`` vectorized draws per data point."""
    return poutine.trace(pyro.plate(PARTICLE_PLATE, draws, dim=DRAWS_DIM)(program)).get_trace(x, **given)


def latent_site(trace) -> Tuple[str, Distribution, torch.Tensor]:
    """``(name, distribution, value)`` of the one latent sample site of ``trace``.

    Observed sites, and data sites sampled under ``pyro.poutine.uncondition``, are not latent.
    Raises :class:`~pyrovae.errors.PyroVAEError` when the program samples no latent or several.
    """
    sites = [(name, site["fn"], site["value"]) for name, site in trace.nodes.items()
             if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)
             and not site["infer"].get("was_observed")]  # data sampled under poutine.uncondition
    if len(sites) != 1:
        names = ", ".join(repr(s[0]) for s in sites) or "none"
        raise PyroVAEError(f"annealing and per-point posterior fits need a model with exactly one latent "
                           f"sample site, like pyrovae.VAE; found {names}")
    return sites[0]


class LogJoint:
    """``log p(x, z)`` of a VAE's Pyro model on the rows ``x``, as a function of ``z``.

    The first call traces the model. When the model is :meth:`pyrovae.VAE.model`, whose density
    is ``vae.prior(y)`` times ``vae.decode(z, y)``, later calls compute those two plain-torch
    densities directly (the same numbers without the tracing, which costs more than a small
    decoder), provided they matched the traced density at the first call; any other model is
    traced every time.

    :param vae: anything with a Pyro ``model(x, **given)`` that samples one latent site.
    :param x: the data rows ``(N, x_dim)``.
    :param given: further keyword arguments of the model (a conditional VAE's labels ``y``).
    :param site: name of the latent site (``"z"`` for :class:`~pyrovae.VAE`).
    """

    def __init__(self, vae, x: torch.Tensor, given: Dict[str, torch.Tensor], site: str = "z") -> None:
        self.vae, self.x, self.given, self.site = vae, x, given, site
        self.direct: Optional[bool] = None  # decided at the first call

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """``log p(x_n, z_cn)`` for ``z`` of shape ``(C, N, *event)``, shape ``(C, N)``; differentiable in ``z``."""
        if self.direct:
            return self.plain(z)
        value = self.traced(z)
        if self.direct is None:
            self.direct = type(self.vae).model is VAE.model and bool(
                torch.allclose(self.plain(z).detach(), value.detach(), rtol=1e-5, atol=1e-5))
        return value

    def traced(self, z: torch.Tensor) -> torch.Tensor:
        """The density from a trace of the model with its latent site conditioned on ``z``."""
        model = poutine.condition(self.vae.model, data={self.site: z})
        trace = traced(model, z.shape[0], self.x, self.given)
        trace.compute_log_prob(site_filter=lambda name, site: not site_is_subsample(site))
        # log p(x, z) = log p(z) + log p(x | z): every sample site's density, the latent's and the data's.
        return sum(site["log_prob"] for site in trace.nodes.values()
                   if site["type"] == "sample" and not site_is_subsample(site))

    def plain(self, z: torch.Tensor) -> torch.Tensor:
        """``log p(z|y) + log p(x|z,y)`` from :meth:`~pyrovae.VAE.prior` and :meth:`~pyrovae.VAE.decode`."""
        y = self.given.get("y")
        return self.vae.prior(y).log_prob(z) + self.vae.decode(z, y).log_prob(self.x)

"""IWAE: the importance-weighted bound (Burda, Grosse & Salakhutdinov 2015, eq. 8).

    L_K(x) = E[ log 1/K sum_k w_k ],  w_k = p(x, z_k) / q(z_k|x),  z_k ~ q(z|x)

per data point, with reparameterized gradients. ``L_1`` is the ELBO and
``L_K`` increases with K towards log p(x). ``num_particles`` is K; particles
are always vectorized.
"""

from __future__ import annotations

import math

import torch
from pyro.infer import Trace_ELBO
from pyro.infer.util import torch_item

from .registry import register_estimator
from .weights import check_reparameterized, local_log_weights


class _WeightedBound(Trace_ELBO):
    """Shared machinery of the importance-weighted estimators: one vectorized trace, K particles."""

    name = "iwae"

    def __init__(self, num_particles: int = 1, max_plate_nesting: float = float("inf"), **kwargs) -> None:
        kwargs["vectorize_particles"] = True
        super().__init__(num_particles=num_particles, max_plate_nesting=max_plate_nesting, **kwargs)

    def _log_weights(self, model, guide, args, kwargs, detach_guide: bool = False):
        (model_trace, guide_trace), = self._get_traces(model, guide, args, kwargs)
        check_reparameterized(guide_trace, self.name)
        # Pyro's max_plate_nesting counts its particle plate, which it adds only for K > 1.
        nesting = self.max_plate_nesting - (self.num_particles > 1)
        lw, scale = local_log_weights(model_trace, guide_trace, nesting, detach_guide)
        return lw, scale, guide_trace

    def _bound(self, lw: torch.Tensor, scale: float) -> torch.Tensor:
        # log of the mean of the K weights, per local unit, summed and scaled by N/M.
        return scale * (lw.logsumexp(0) - math.log(self.num_particles)).sum()

    def loss(self, model, guide, *args, **kwargs) -> float:
        """The negative bound (a float), as Pyro's ELBOs return."""
        with torch.no_grad():
            lw, scale, _ = self._log_weights(model, guide, args, kwargs)
            return -torch_item(self._bound(lw, scale))

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """The negative bound; gradients of the estimator's surrogate are accumulated into ``.grad``."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward(retain_graph=self.retain_graph)
        return torch_item(loss)


@register_estimator(
    "iwae",
    summary="importance-weighted bound log(1/K sum_k w_k) per data point; num_particles is K",
    reference="Burda, Grosse & Salakhutdinov 2015, eq. (8)",
    kl_weighting=False,  # log mean_k w_k has no separate KL term to weight
)
class IWAE(_WeightedBound):
    """The IWAE bound with its plain reparameterized gradient."""

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """The negative bound as a differentiable tensor."""
        lw, scale, _ = self._log_weights(model, guide, args, kwargs)
        return -self._bound(lw, scale)

"""IWAE: the importance-weighted bound (Burda, Grosse & Salakhutdinov 2015, eq. 8).

    L_K(x) = E[ log 1/K sum_k w_k ],  w_k = p(x, z_k) / q(z_k|x),  z_k ~ q(z|x)

with reparameterized gradients. ``L_1`` is the ELBO and ``L_K`` increases
with K towards log p(x). ``num_particles`` is K. The weights are per element
of the plate the latents are local to (one log-mean-exp per data point) where
that is valid, and over the whole trace otherwise, as Pyro's
``RenyiELBO(alpha=0)``; :mod:`pyrovae.estimators.weights` decides, and
:attr:`IWAE.weighting` reports the decision of the last call.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from pyro.infer import Trace_ELBO
from pyro.infer.util import torch_item

from .particles import ParticleErrors
from .registry import register_estimator
from .weights import LogWeights, Weighting, check_reparameterized, log_weights_of


@register_estimator(
    "iwae",
    summary="importance-weighted bound log(1/K sum_k w_k), per data point where latents are local; num_particles is K",
    reference="Burda, Grosse & Salakhutdinov 2015, eq. (8)",
    kl_weighting=False,  # log mean_k w_k has no separate KL term to weight
    bound="iwae",
)
class IWAE(ParticleErrors, Trace_ELBO):
    """The IWAE bound with its plain reparameterized gradient; see :attr:`weighting`.

    Particles are vectorized (one batched pass) unless ``vectorize_particles=False``,
    which draws the K particles one trace at a time, for models written for one draw.
    """

    name = "iwae"

    def __init__(self, num_particles: int = 1, max_plate_nesting: float = float("inf"),
                 vectorize_particles: bool = True, **kwargs) -> None:
        super().__init__(num_particles=num_particles, max_plate_nesting=max_plate_nesting,
                         vectorize_particles=vectorize_particles, **kwargs)
        #: How the last call decomposed its weights (per data point, or joint); None before the first call.
        self.weighting: Optional[Weighting] = None

    def _log_weights(self, model, guide, args, kwargs, detach_guide: bool = False) -> Tuple[LogWeights, List]:
        traces = list(self._get_traces(model, guide, args, kwargs))
        for _, guide_trace in traces:
            check_reparameterized(guide_trace, self.name)
        weights = log_weights_of(traces, detach_guide)
        self.weighting = weights.weighting
        return weights, traces

    def loss(self, model, guide, *args, **kwargs) -> float:
        """The negative bound (a float), as Pyro's ELBOs return."""
        with torch.no_grad():
            weights, _ = self._log_weights(model, guide, args, kwargs)
            return -torch_item(weights.bound())

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """The negative bound; gradients of the estimator's surrogate are accumulated into ``.grad``.

        As in Pyro's ELBOs, nothing is accumulated when no parameter site is in the traces
        (a fixed guide, parameters hidden by ``poutine.block``) or none reaches the loss.
        """
        loss, traces = self._loss(model, guide, args, kwargs)
        trainable = any(site["type"] == "param" for pair in traces for trace in pair for site in trace.nodes.values())
        if trainable and loss.requires_grad:
            loss.backward(retain_graph=self.retain_graph)
        return torch_item(loss)

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """The negative bound as a tensor whose gradient is the estimator's."""
        return self._loss(model, guide, args, kwargs)[0]

    def _loss(self, model, guide, args, kwargs) -> Tuple[torch.Tensor, List]:
        """The negative bound (its plain reparameterized gradient) and the traces it came from."""
        weights, traces = self._log_weights(model, guide, args, kwargs)
        return -weights.bound(), traces

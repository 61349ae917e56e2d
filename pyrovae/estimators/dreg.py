"""DReG: doubly-reparameterized gradients of the IWAE bound (Tucker, Lawson, Gu & Maddison 2018).

The value is the IWAE bound. The gradients are unbiased for it but lower in variance for the
encoder (eq. 5 of the paper):

    decoder theta:  sum_k w~_k  d/dtheta log w_k
    encoder phi:    sum_k w~_k^2  (d log w_k / d z_k) (d z_k / d phi),   log q with parameters stopped

with ``w~_k = w_k / sum_j w_j`` per element of the local plate (or over the whole trace when the
weights are joint; see :mod:`pyrovae.estimators.weights`). Implemented as a surrogate
``sum_k stop(w~_k) log w_k`` (q's parameters stopped) plus a gradient hook that multiplies the
path derivative reaching each ``z_k`` by ``w~_k`` once more.
"""

from __future__ import annotations

from typing import List, Tuple

import torch

from .iwae import IWAE
from .registry import register_estimator
from .weights import latent_names


def _aligned(w: torch.Tensor, value: torch.Tensor, event_dim: int) -> torch.Tensor:
    """``w`` (shape ``(K, *plates)``) right-aligned to ``value``'s batch dims, then its event dims.

    Leading dims the site lacks have size 1 (Pyro adds no particle plate for K = 1).
    """
    batch = value.dim() - event_dim
    w = w.reshape(w.shape[max(0, w.dim() - batch):])
    return w.reshape(w.shape + (1,) * event_dim)


def _hook_weights(traces, w: torch.Tensor) -> None:
    """Multiply the path gradient reaching each latent ``z_k`` by its normalized weight ``w~_k``."""
    for k, (_, guide_trace) in enumerate(traces):
        w_k = w if len(traces) == 1 else w[k:k + 1]  # one trace per particle when not vectorized
        for name in latent_names(guide_trace):
            site = guide_trace.nodes[name]
            if site["value"].requires_grad:
                factor = _aligned(w_k, site["value"], site["fn"].event_dim)
                site["value"].register_hook(lambda g, factor=factor: g * factor)


@register_estimator(
    "dreg",
    summary="IWAE bound with doubly-reparameterized encoder gradients (w~^2 path terms, no score term)",
    reference="Tucker et al. 2018, eq. (5)",
    kl_weighting=False,  # log mean_k w_k has no separate KL term to weight
    bound="iwae",
)
class DReG(IWAE):
    """The IWAE bound with DReG gradients; ``num_particles`` is K; see :attr:`weighting`."""

    name = "dreg"
    #: The w~ factor lives in a gradient hook, which a TorchScript recording would drop (fastpath).
    traceable = False

    def _loss(self, model, guide, args, kwargs) -> Tuple[torch.Tensor, List]:
        """The negative IWAE bound, whose gradient is the DReG estimator, and the traces."""
        weights, traces = self._log_weights(model, guide, args, kwargs, detach_guide=True)
        w = torch.softmax(weights.values.detach(), dim=0)  # normalized weights per local element
        _hook_weights(traces, w)
        surrogate = (weights.scale * (w * weights.values).sum(0)).sum() + weights.shared
        bound = weights.bound().detach()
        return -(bound + surrogate - surrogate.detach()), traces

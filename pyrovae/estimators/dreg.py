"""DReG: doubly-reparameterized gradients of the IWAE bound (Tucker, Lawson, Gu & Maddison 2018).

The value is the IWAE bound. The gradients are unbiased for it but lower in variance for the
encoder (eq. 5 of the paper):

    decoder theta:  sum_k w~_k  d/dtheta log w_k
    encoder phi:    sum_k w~_k^2  (d log w_k / d z_k) (d z_k / d phi),   log q with parameters stopped

with ``w~_k = w_k / sum_j w_j`` per data point. Implemented as a surrogate
``sum_k stop(w~_k) log w_k`` (q's parameters stopped) plus a gradient hook that
multiplies the path derivative reaching each ``z_k`` by ``w~_k`` once more.
"""

from __future__ import annotations

import torch

from .iwae import _WeightedBound
from .registry import register_estimator
from .weights import latent_names


def _aligned(w: torch.Tensor, value: torch.Tensor, event_dim: int) -> torch.Tensor:
    """``w`` (shape ``(K, *plates)``) right-aligned to ``value``'s batch dims, then its event dims.

    Leading dims the site lacks have size 1 (Pyro adds no particle plate for K = 1).
    """
    batch = value.dim() - event_dim
    w = w.reshape(w.shape[max(0, w.dim() - batch):])
    return w.reshape(w.shape + (1,) * event_dim)


@register_estimator(
    "dreg",
    summary="IWAE bound with doubly-reparameterized encoder gradients (w~^2 path terms, no score term)",
    reference="Tucker et al. 2018, eq. (5)",
    kl_weighting=False,  # log mean_k w_k has no separate KL term to weight
)
class DReG(_WeightedBound):
    """The IWAE bound with DReG gradients; ``num_particles`` is K."""

    name = "dreg"
    #: The w~ factor lives in a gradient hook, which a TorchScript recording would drop (fastpath).
    traceable = False

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """The negative IWAE bound; its gradient is the DReG estimator."""
        lw, scale, guide_trace = self._log_weights(model, guide, args, kwargs, detach_guide=True)
        w = torch.softmax(lw.detach(), dim=0)  # normalized weights per local unit
        for name in latent_names(guide_trace):
            value = guide_trace.nodes[name]["value"]
            if value.requires_grad:
                # z_k's path gradient gets one more w~_k: align w~ to the site's shape and hook it.
                value.register_hook(lambda g, w=_aligned(w, value, guide_trace.nodes[name]["fn"].event_dim): g * w)
        surrogate = scale * (w * lw).sum()
        bound = self._bound(lw.detach(), scale)
        return -(bound + surrogate - surrogate.detach())

"""STL: sticking-the-landing ELBO gradients (Roeder, Wu & Duvenaud 2017).

The value is the ELBO (SGVB-A). The gradient drops the score term
``d/dphi log q_phi(z)`` at fixed ``z``, whose expectation is zero: ``log q`` is
evaluated with its distribution parameters stopped, so the encoder is reached
only through the sample path ``z = g_phi(eps, x)``. At the exact posterior
``log p(x, z) - log q(z|x)`` is constant in ``z`` and the gradient is exactly zero.
"""

from __future__ import annotations

from pyro.distributions.util import detach, scale_and_mask
from pyro.infer import Trace_ELBO

from .base import SyncFreeLoss, loss_pair
from .registry import register_estimator
from .weights import check_reparameterized


@register_estimator(
    "stl",
    summary="ELBO with the path-only (sticking-the-landing) gradient: log q with stopped parameters",
    reference="Roeder, Wu & Duvenaud 2017, eq. (8)",
)
class STL(SyncFreeLoss, Trace_ELBO):
    """SGVB-A's value with the sticking-the-landing gradient; works on any reparameterized guide."""

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        check_reparameterized(guide_trace, "stl")
        elbo = 0.0
        for site in model_trace.nodes.values():
            if site["type"] == "sample":
                elbo = elbo + site["log_prob_sum"]
        for site in guide_trace.nodes.values():
            if site["type"] == "sample":
                log_q = detach(site["fn"]).log_prob(site["value"])
                elbo = elbo - scale_and_mask(log_q, site["scale"], site["mask"]).sum()
        return loss_pair(elbo)

"""SGVB-A: the plain Monte-Carlo ELBO estimator (Kingma & Welling 2013, eq. 6).

    L~A(theta, phi; x) = 1/L sum_l [log p(x, z_l) - log q(z_l|x)],  z_l = g_phi(eps_l, x)

This is exactly Pyro's :class:`~pyro.infer.Trace_ELBO` when every latent site
of the guide is reparameterized; pyrovae registers it under the name ``mc``.
"""

from __future__ import annotations

from pyro.infer import Trace_ELBO

from .base import SyncFreeLoss, loss_pair, pathwise
from .registry import register_estimator


@register_estimator(
    "mc",
    summary="SGVB-A: Monte-Carlo log p(x,z) - log q(z|x) at reparameterized samples",
    reference="Kingma & Welling 2013, eq. (6)",
)
class MonteCarloELBO(SyncFreeLoss, Trace_ELBO):
    """SGVB-A, the estimator :math:`\\tilde L^A` of the AEVB paper (eq. 6).

    The same estimate and gradient as :class:`pyro.infer.Trace_ELBO`, computed
    without host syncs when every guide site is reparameterized (see
    :mod:`pyrovae.estimators.base`); with score-function sites it is Pyro's own code.
    """

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        if not pathwise(guide_trace):
            return super()._differentiable_loss_particle(model_trace, guide_trace)
        # eq. (6) for one particle: log p(x, z_l) - log q(z_l|x), already scaled by N/M per site.
        return loss_pair(model_trace.log_prob_sum() - guide_trace.log_prob_sum())

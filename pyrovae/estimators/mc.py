"""SGVB-A: the plain Monte-Carlo ELBO estimator (Kingma & Welling 2013, eq. 6).

    L~A(theta, phi; x) = 1/L sum_l [log p(x, z_l) - log q(z_l|x)],  z_l = g_phi(eps_l, x)

This is exactly Pyro's :class:`~pyro.infer.Trace_ELBO` when every latent site
of the guide is reparameterized; pyrovae registers it under the name ``mc``.
"""

from __future__ import annotations

from pyro.infer import Trace_ELBO

from .registry import register_estimator


@register_estimator(
    "mc",
    summary="SGVB-A: Monte-Carlo log p(x,z) - log q(z|x) at reparameterized samples",
    reference="Kingma & Welling 2013, eq. (6)",
)
class MonteCarloELBO(Trace_ELBO):
    """SGVB-A, the estimator :math:`\\tilde L^A` of the AEVB paper (eq. 6).

    Identical to :class:`pyro.infer.Trace_ELBO`; it exists under its own name
    so that the estimator registry holds one class per estimator.
    """

"""Closed-form KL where one exists, sampling elsewhere (Pyro's mean-field behaviour, made visible).

Per site, this is SGVB-B (eq. 7) when ``kl_divergence(q, p)`` is registered
and valid there, and SGVB-A (eq. 6) otherwise. Unlike Pyro's ``TraceMeanField_ELBO``
it reports which route each site took in :attr:`AnalyticELBO.kl_routes`, and it
samples a site whose prior reads guide samples drawn from the site itself (the
lower layers of a hierarchical VAE; :mod:`pyrovae.coupling`), where the closed
form would be a biased ELBO.
"""

from __future__ import annotations

from .analytic import AnalyticELBO
from .registry import register_estimator


@register_estimator(
    "auto",
    summary="closed-form KL where registered, Monte-Carlo KL elsewhere; reports the route per site",
    reference="Kingma & Welling 2013, eqs. (6)-(7); Pyro TraceMeanField_ELBO",
)
class AutoELBO(AnalyticELBO):
    """Mixed SGVB-A/B: analytic KL per site where available; see :attr:`kl_routes`."""

    strict = False

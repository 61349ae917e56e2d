"""SGVB-B: closed-form KL plus a Monte-Carlo reconstruction term (Kingma & Welling 2013, eq. 7).

    L~B(theta, phi; x) = -KL(q(z|x) || p(z)) + 1/L sum_l log p(x|z_l)

Pyro's :class:`~pyro.infer.TraceMeanField_ELBO` computes this, but where no
closed form is registered it quietly samples the KL instead, so a user who
asked for SGVB-B may be running SGVB-A. :class:`AnalyticELBO` checks every
latent site first and raises, naming the site and the (posterior, prior) pair.
It also refuses a site whose prior reads guide samples drawn from the site itself
(the lower layers of a hierarchical VAE; :mod:`pyrovae.coupling`), where the closed
form would bias the ELBO and Pyro's ``TraceMeanField_ELBO`` would use it anyway.
"""

from __future__ import annotations

from typing import Dict, FrozenSet, Hashable

import torch
from pyro.distributions.util import scale_and_mask
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.util import check_fully_reparametrized, is_validation_enabled
from torch.distributions import kl_divergence

from ..coupling import coupled_sites, structure_key
from ..errors import PyroVAEError
from ..kl import ANALYTIC, SAMPLED, describe, kl_routes
from .base import SyncFreeLoss, loss_pair
from .registry import register_estimator


class MissingKLError(PyroVAEError):
    """The analytic estimator met a (posterior, prior) pair with no closed-form KL."""


@register_estimator(
    "analytic",
    summary="SGVB-B: closed-form KL(q||p) plus Monte-Carlo log p(x|z); refuses pairs with no closed form",
    reference="Kingma & Welling 2013, eq. (7)",
)
class AnalyticELBO(SyncFreeLoss, TraceMeanField_ELBO):
    """SGVB-B, :math:`\\tilde L^B` of the AEVB paper (eq. 7), strict about the closed form.

    After each call, :attr:`kl_routes` maps every latent site to
    ``"analytic"`` (closed-form KL) or ``"sampled"``.
    """

    #: Whether a site without a closed-form KL is an error (True) or sampled (False).
    strict = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kl_routes: Dict[str, str] = {}
        self._coupled: Dict[Hashable, FrozenSet[str]] = {}  # per program structure, see _coupled_sites

    def _get_trace(self, model, guide, args, kwargs):
        # Trace_ELBO's traces, without TraceMeanField_ELBO's check that both programs visit the sites
        # in the same order: that check warns on every valid top-down model with a bottom-up guide,
        # and the bias it guards against is found exactly by coupled_sites.
        model_trace, guide_trace = Trace_ELBO._get_trace(self, model, guide, args, kwargs)
        coupled = self._coupled_sites(model, guide, model_trace, guide_trace, args, kwargs)
        self.kl_routes = kl_routes(model_trace, guide_trace, coupled)
        if self.strict:
            self._refuse_sampled(model_trace, guide_trace, coupled)
        return model_trace, guide_trace

    def _coupled_sites(self, model, guide, model_trace, guide_trace, args, kwargs) -> FrozenSet[str]:
        """Sites whose closed form would be biased (a prior reading the site's own guide sample).

        Found once per program structure: a one-layer VAE pays a dictionary lookup per step.
        """
        key = structure_key(model_trace, guide_trace)
        if key not in self._coupled:
            pairs = kl_routes(model_trace, guide_trace)
            self._coupled[key] = (coupled_sites(model, guide, guide_trace, *args, **kwargs)
                                  if ANALYTIC in pairs.values() else frozenset())
        return self._coupled[key]

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        # Pyro's TraceMeanField_ELBO computes the same sum, then calls .item() on it (a host sync).
        elbo = 0.0
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample":
                continue
            if site["is_observed"]:
                elbo = elbo + site["log_prob_sum"]  # 1/L sum_l log p(x|z_l), scaled by N/M
            else:
                elbo = elbo - self._kl_term(name, site, guide_trace.nodes[name])
        for name, site in guide_trace.nodes.items():  # auxiliary guide sites: their entropy only
            if site["type"] == "sample" and name not in model_trace.nodes:
                elbo = elbo - site["score_parts"].entropy_term.sum()
        return loss_pair(elbo)

    def _kl_term(self, name: str, model_site, guide_site) -> torch.Tensor:
        """KL(q||p) of one latent site: closed form (eq. 7), or log q - log p at the sample."""
        if is_validation_enabled():
            check_fully_reparametrized(guide_site)
        if self.kl_routes[name] == ANALYTIC:
            # The KL takes the *guide* site's scale and mask, as in Pyro (N/M, and any beta).
            # A fully masked pair's KL is the number 0 (Pyro's MaskedDistribution rule): made a tensor.
            kl = torch.as_tensor(kl_divergence(guide_site["fn"], model_site["fn"]))
            return scale_and_mask(kl, guide_site["scale"], guide_site["mask"]).sum()
        return guide_site["score_parts"].entropy_term.sum() - model_site["log_prob_sum"]

    def _refuse_sampled(self, model_trace, guide_trace, coupled: FrozenSet[str]) -> None:
        for name, route in self.kl_routes.items():
            if name in coupled:
                raise MissingKLError(
                    f"estimator 'analytic' cannot use a closed-form KL at site {name!r}: its prior reads guide "
                    f"samples drawn from {name!r} itself (a bottom-up guide), so the closed form would bias the "
                    "ELBO; use 'auto' (samples that site) or 'mc'")
            if route == SAMPLED:
                q = describe(guide_trace.nodes[name]["fn"])
                p = describe(model_trace.nodes[name]["fn"])
                raise MissingKLError(
                    f"estimator 'analytic' needs a closed-form KL, but site {name!r} pairs "
                    f"posterior {q} with prior {p}, which has none; use 'auto' or 'mc'"
                )

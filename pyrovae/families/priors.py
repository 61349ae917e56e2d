"""Priors beyond the fixed families: a learnable mixture of Gaussians, and the closed-form KL table."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions import biject_to, constraints

from ..errors import PyroVAEError
from ..kl import has_closed_form_kl
from .base import FAMILIES, support_within
from .mixture import NormalMixture
from .registry import PRIORS, EncoderView, PriorSpec, register_prior


class MixturePrior(nn.Module):
    """``p(z) = sum_k pi_k N(z; mu_k, diag sigma_k^2)`` with learned weights, means and scales.

    A learnable prior (e.g. Tomczak & Welling 2018 use a mixture); it has no
    closed-form KL with any posterior, so train it with ``mc`` or ``auto``. Its density is
    :class:`~pyrovae.families.mixture.NormalMixture`'s matrix product.
    """

    def __init__(self, z_dim: int, components: int = 10) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(components))
        self.loc = nn.Parameter(torch.randn(components, z_dim))
        self.raw_scale = nn.Parameter(torch.zeros(components, z_dim))

    def forward(self, y: Optional[torch.Tensor] = None) -> dist.TorchDistribution:
        """The mixture, event shape ``(z_dim,)``."""
        scale = biject_to(constraints.positive)(self.raw_scale)
        components = dist.Normal(self.loc, scale, validate_args=False).to_event(1)
        return NormalMixture(dist.Categorical(logits=self.logits), components, validate_args=False)


register_prior(PriorSpec("mog", lambda z_dim: MixturePrior(z_dim), constraints.independent(constraints.real, 1),
                         "learnable mixture of 10 diagonal Gaussians"))


def closed_form_table(z_dim: int = 2) -> Dict[Tuple[str, str], str]:
    """``{(posterior, prior): "yes" | "-" | "x"}`` over all registered families and priors.

    ``yes``: ``kl_divergence`` has a closed form; ``-``: only a sampled KL;
    ``x``: the posterior's support is not inside the prior's, or the prior cannot be built
    from it (a VampPrior of a posterior that cannot be mixed).
    """
    table = {}
    probe = torch.Generator().manual_seed(0)
    for q_name, family in FAMILIES.items():
        # Random parameters: a probe equal to the prior's would make some KLs look available
        # (torch's transformed-distribution rule needs identical transforms).
        head, size = family.posterior_head(z_dim), family.head_size(z_dim)
        q = head(torch.randn(1, size, generator=probe))
        encoder = EncoderView(1, lambda u: head(torch.randn(len(u), size, generator=probe)), head, size)
        for p_name, spec in PRIORS.items():
            table[q_name, p_name] = _closed_form_entry(family, q, spec, z_dim, encoder)
    return table


def _closed_form_entry(family, q, spec: PriorSpec, z_dim: int, encoder: EncoderView) -> str:
    if spec.support is not None and not support_within(family.support, spec.support):
        return "x"
    try:
        prior = spec.make(z_dim, encoder)
    except PyroVAEError:  # e.g. a VampPrior of a posterior that cannot be mixed
        return "x"
    return "yes" if has_closed_form_kl(q, prior()) else "-"

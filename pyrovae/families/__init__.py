"""Posterior families and priors, resolved by name through two registries.

``FAMILIES`` maps a name to a :class:`Family`: how encoder outputs become a
reparameterizable ``q(z|x)``, its support, route and default prior.
``PRIORS`` maps a name to a :class:`PriorSpec`; every family with standard
parameters is also a fixed prior, ``mog`` is a learnable mixture and ``vamp`` the VampPrior.
"""

from . import builtin  # noqa: F401  (importing registers the built-in families)
from .base import (FAMILIES, ROUTES, Family, FixedPrior, Param, ParametricFamily, check_compatible,
                   support_str, support_within)
from .builtin import LOG_VARIANCE, lowrank_normal
from .flow import AmortizedFlowFamily, FlowFamily
from .mixture import NormalMixture
from .priors import MixturePrior, closed_form_table
from .registry import PRIORS, EncoderView, PriorSpec, register_family, register_prior
from .vamp import VampPrior, vamp_prior

__all__ = [
    "FAMILIES", "PRIORS", "ROUTES", "Family", "ParametricFamily", "Param", "FlowFamily", "AmortizedFlowFamily",
    "PriorSpec", "EncoderView", "NormalMixture", "VampPrior", "vamp_prior",
    "FixedPrior", "MixturePrior", "register_family", "register_prior", "check_compatible", "support_str", "support_within",
    "closed_form_table", "LOG_VARIANCE", "lowrank_normal",
]

"""Registry of reparameterizable distribution families for posteriors and priors.

A :class:`Family` says how an encoder head's raw outputs become a valid
distribution: each parameter has a constraint, and
``torch.distributions.biject_to(constraint)`` maps unconstrained reals onto
it (``exp`` for a positive scale). A family may override that map per
parameter: the Normal's head predicts ``log sigma^2`` (Kingma & Welling 2013,
appendix C.2). A family also knows its support,
its default prior and its reparameterization route (paper section 2.4).

Register a new family with one call::

    register_family(Family("laplace", dist.Laplace, params=(("loc", real), ("scale", positive)), ...))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Tuple

import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions import biject_to, constraints
from torch.distributions.constraints import Constraint
from torch.distributions.transforms import AffineTransform, ComposeTransform, ExpTransform, Transform

from .errors import PyroVAEError
from .kl import has_closed_form_kl
from .registry import Registry

#: The reparameterization routes of the AEVB paper, section 2.4.
ROUTES = ("location-scale", "inverse-cdf", "composition", "implicit", "flow")


@dataclass(frozen=True)
class Family:
    """A family of distributions factorized over latent coordinates.

    :param name: registry name, as used on the command line.
    :param dist: the Pyro distribution class; called with the parameters by keyword.
    :param params: ``(name, constraint)`` pairs, in the order the encoder head lays them out.
    :param route: how ``rsample`` is reparameterized, one of :data:`ROUTES`.
    :param default_prior: the family name of the prior used with it by default.
    :param standard: parameter values of this family when it serves as a fixed prior
        (e.g. ``loc=0, scale=1``); empty when it cannot be a prior.
    :param description: one line for ``pyrovae families``.
    :param heads: optional ``{param: Transform}`` overriding ``biject_to(constraint)``
        for how a raw output becomes that parameter.
    :param fixed: parameters held constant rather than predicted (e.g. Student-t degrees of freedom).
    """

    name: str
    dist: Callable[..., dist.TorchDistribution]
    params: Tuple[Tuple[str, Constraint], ...]
    route: str
    default_prior: str = "normal"
    standard: Mapping[str, float] = field(default_factory=dict)
    description: str = ""
    heads: Mapping[str, Transform] = field(default_factory=dict)
    fixed: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.route not in ROUTES:
            raise PyroVAEError(f"family {self.name!r}: route must be one of {ROUTES}, got {self.route!r}")

    @property
    def support(self) -> Constraint:
        """The support of one latent coordinate."""
        return self.dist.support

    def head_size(self, z_dim: int) -> int:
        """How many raw encoder outputs one data point needs for ``z_dim`` latents."""
        return len(self.params) * z_dim

    def head(self, param: str) -> Transform:
        """The map from an unconstrained raw output to the parameter ``param``."""
        return self.heads.get(param) or biject_to(dict(self.params)[param])

    def from_raw(self, raw: torch.Tensor) -> dist.TorchDistribution:
        """Turn raw head outputs ``(..., head_size)`` into ``q(z|x)`` with event shape ``(z_dim,)``."""
        chunks = raw.chunk(len(self.params), dim=-1)
        kwargs = {name: self.head(name)(chunk) for (name, _), chunk in zip(self.params, chunks)}
        return self.dist(**self.fixed, **kwargs, validate_args=False).to_event(1)

    def raw_from_params(self, **values: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`from_raw`: the raw head output that yields ``values``.

        Useful to set an encoder's bias to a known posterior (tests, warm starts).
        """
        raws = [self.head(name).inv(torch.as_tensor(values[name])) for name, _ in self.params]
        return torch.cat(raws, dim=-1)


class FixedPrior(nn.Module):
    """A prior ``p(z)`` from a family with fixed, standard parameters.

    The parameters live in buffers so the prior follows the VAE across devices
    and dtypes; the plates of the model broadcast it over data points.
    """

    def __init__(self, family: Family, z_dim: int) -> None:
        super().__init__()
        if not family.standard:
            raise PyroVAEError(f"family {family.name!r} has no standard parameters and cannot be a fixed prior")
        self.family = family
        for name, value in family.standard.items():
            self.register_buffer(name, torch.full((z_dim,), float(value)))

    def forward(self) -> dist.TorchDistribution:
        """The prior distribution, event shape ``(z_dim,)``."""
        kwargs = {name: getattr(self, name) for name in self.family.standard}
        return self.family.dist(**kwargs, validate_args=False).to_event(1)


FAMILIES: Registry[Family] = Registry("family")


def register_family(family: Family, *, overwrite: bool = False) -> Family:
    """Add ``family`` to the registry: the one call that makes a family usable everywhere."""
    return FAMILIES.register(family.name, family, overwrite=overwrite)


def _bounds(c: Constraint) -> Tuple[float, float]:
    return (getattr(c, "lower_bound", -math.inf), getattr(c, "upper_bound", math.inf))


def support_within(inner: Constraint, outer: Constraint) -> bool:
    """Whether every value allowed by ``inner`` is allowed by ``outer`` (interval supports)."""
    if inner is outer or outer is constraints.real:
        return True
    if inner.event_dim != outer.event_dim or inner.is_discrete != outer.is_discrete:
        return False
    (lo_i, hi_i), (lo_o, hi_o) = _bounds(inner), _bounds(outer)
    if lo_i < lo_o or hi_i > hi_o:
        return False
    # A closed end of ``inner`` (e.g. 0 in [0, 1]) must be allowed by ``outer`` too.
    ends = [torch.tensor(b) for b in (lo_i, hi_i) if math.isfinite(b)]
    return all(bool(outer.check(b)) for b in ends if bool(inner.check(b)))


def check_compatible(posterior: Family, prior: Family) -> None:
    """Refuse a posterior that can put mass where the prior has none (KL would be infinite)."""
    if not support_within(posterior.support, prior.support):
        raise PyroVAEError(
            f"posterior {posterior.name!r} (support {posterior.support}) is not inside "
            f"the support of prior {prior.name!r} ({prior.support}): KL(q||p) would be infinite"
        )


_real, _pos = constraints.real, constraints.positive

#: The encoder predicts log sigma^2 and sigma = exp(raw / 2) (Kingma & Welling 2013, appendix C.2).
LOG_VARIANCE = ComposeTransform([AffineTransform(0.0, 0.5), ExpTransform()])

register_family(Family(
    "normal", dist.Normal, (("loc", _real), ("scale", _pos)), "location-scale",
    standard={"loc": 0.0, "scale": 1.0}, heads={"scale": LOG_VARIANCE},
    description="diagonal Gaussian, z = mu + sigma * eps, head predicts log sigma^2 (the paper's choice)",
))
register_family(Family(
    "laplace", dist.Laplace, (("loc", _real), ("scale", _pos)), "location-scale",
    default_prior="laplace", standard={"loc": 0.0, "scale": 1.0},
    description="heavy-ish tails, z = mu + b * Laplace(0, 1)",
))
register_family(Family(
    "student-t", dist.StudentT, (("loc", _real), ("scale", _pos)), "location-scale",
    standard={"df": 5.0, "loc": 0.0, "scale": 1.0}, fixed={"df": 5.0},
    description="heavy tails, 5 degrees of freedom, z = mu + sigma * t_5",
))


def closed_form_table() -> dict:
    """``{(posterior, prior): "yes" | "-" | "x"}`` over all registered families.

    ``yes``: ``kl_divergence`` has a closed form; ``-``: only a sampled KL;
    ``x``: the posterior's support is not inside the prior's.
    """
    table = {}
    for q_name, q_fam in FAMILIES.items():
        q = q_fam.from_raw(torch.zeros(1, q_fam.head_size(2)))
        for p_name, p_fam in FAMILIES.items():
            if not support_within(q_fam.support, p_fam.support):
                table[q_name, p_name] = "x"
            elif not p_fam.standard:
                table[q_name, p_name] = "-"
            else:
                table[q_name, p_name] = "yes" if has_closed_form_kl(q, FixedPrior(p_fam, 2)()) else "-"
    return table

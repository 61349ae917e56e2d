"""The family abstraction: how raw encoder outputs become a reparameterizable distribution.

A :class:`Family` lists its parameters as :class:`Param` objects, each with a
constraint and a shape per data point. Raw head outputs are split, reshaped
and mapped onto each constraint by ``torch.distributions.biject_to``
(or a per-parameter override, e.g. the Normal's log-variance head). The
family also knows its support, default prior and reparameterization route
(Kingma & Welling 2013, section 2.4).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Tuple, Union

import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions import biject_to, constraints
from torch.distributions.constraints import Constraint
from torch.distributions.transforms import Transform

from ..errors import PyroVAEError
from ..registry import Registry

#: The reparameterization routes of the AEVB paper, section 2.4, plus flows.
ROUTES = ("location-scale", "inverse-cdf", "composition", "implicit", "flow")


def _vector(z_dim: int) -> Tuple[int, ...]:
    return (z_dim,)


@dataclass(frozen=True)
class Param:
    """One distribution parameter predicted by the encoder head.

    :param name: keyword of the distribution constructor.
    :param constraint: where the parameter lives; ``biject_to`` maps raw reals onto it.
    :param shape: the parameter's shape per data point as a function of ``z_dim``.
    :param head: optional transform replacing ``biject_to(constraint)``.
    """

    name: str
    constraint: Constraint
    shape: Callable[[int], Tuple[int, ...]] = _vector
    head: Optional[Transform] = None

    def transform(self) -> Transform:
        """The map from unconstrained raw outputs to this parameter."""
        return self.head or biject_to(self.constraint)

    def size(self, z_dim: int) -> int:
        """Raw outputs this parameter takes per data point."""
        return math.prod(self.shape(z_dim))


class Family(ABC):
    """Base class: what every posterior family provides to the VAE.

    Subclasses implement :attr:`support`, :meth:`head_size` and :meth:`posterior_head`;
    a family with standard parameters can also serve as a fixed prior.
    """

    name: str
    route: str
    default_prior: str
    description: str

    @property
    @abstractmethod
    def support(self) -> Constraint:
        """The support of the latent vector ``z`` (event dimension 1)."""

    @abstractmethod
    def head_size(self, z_dim: int) -> int:
        """Raw encoder outputs one data point needs."""

    @abstractmethod
    def posterior_head(self, z_dim: int) -> nn.Module:
        """A module mapping raw outputs ``(..., head_size)`` to ``q(z|x)`` with event shape ``(z_dim,)``."""


class _RawHead(nn.Module):
    """A parameter-free posterior head: ``forward`` is the family's ``from_raw``."""

    def __init__(self, family: "ParametricFamily", z_dim: int) -> None:
        super().__init__()
        self.family, self.z_dim = family, z_dim

    def forward(self, raw: torch.Tensor) -> dist.TorchDistribution:
        return self.family.from_raw(raw, self.z_dim)


@dataclass(frozen=True)
class ParametricFamily(Family):
    """A family whose parameters all come from the encoder head.

    :param name: registry name, as used on the command line.
    :param dist: the Pyro distribution class; called with the parameters by keyword.
    :param params: :class:`Param` objects (or ``(name, constraint)`` pairs for per-coordinate
        vectors), in the order the head lays them out.
    :param route: how ``rsample`` is reparameterized, one of :data:`ROUTES`.
    :param default_prior: the prior used with it when none is named.
    :param standard: parameter values of this family as a fixed prior (e.g. ``loc=0, scale=1``);
        empty when it cannot be one.
    :param description: one line for ``pyrovae families``.
    :param fixed: parameters held constant rather than predicted (e.g. Student-t degrees of freedom).
    :param event_dim: event dimensions of ``dist`` itself: 0 for univariate families
        (made a vector with ``to_event(1)``), 1 for Dirichlet or multivariate normals.
    :param standard_dist: optional; builds the same law as ``dist(**standard)`` from the
        ``standard`` buffers, with a cheaper log-density (e.g. :class:`StandardNormal`).
    """

    name: str
    dist: Callable[..., dist.TorchDistribution]
    params: Tuple[Union[Param, Tuple[str, Constraint]], ...]
    route: str
    default_prior: str = "normal"
    standard: Mapping[str, float] = field(default_factory=dict)
    description: str = ""
    fixed: Mapping[str, float] = field(default_factory=dict)
    event_dim: int = 0
    standard_dist: Optional[Callable[..., dist.TorchDistribution]] = None

    def __post_init__(self) -> None:
        if self.route not in ROUTES:
            raise PyroVAEError(f"family {self.name!r}: route must be one of {ROUTES}, got {self.route!r}")
        params = tuple(p if isinstance(p, Param) else Param(*p) for p in self.params)
        object.__setattr__(self, "params", params)

    @property
    def support(self) -> Constraint:
        support = self.dist.support
        return support if self.event_dim == 1 else constraints.independent(support, 1)

    def head_size(self, z_dim: int) -> int:
        return sum(p.size(z_dim) for p in self.params)

    def posterior_head(self, z_dim: int) -> nn.Module:
        return _RawHead(self, z_dim)

    def _z_dim(self, raw: torch.Tensor) -> int:
        # Head sizes grow monotonically with z_dim, so the z_dim of a raw vector is unique.
        z = 1
        while self.head_size(z) < raw.shape[-1]:
            z += 1
        if self.head_size(z) != raw.shape[-1]:
            raise PyroVAEError(f"family {self.name!r}: {raw.shape[-1]} raw outputs fit no latent size")
        return z

    def make(self, **params: torch.Tensor) -> dist.TorchDistribution:
        """The distribution with these parameters, event shape ``(z_dim,)``."""
        d = self.dist(**self.fixed, **params, validate_args=False)
        return d.to_event(1) if self.event_dim == 0 else d

    def from_raw(self, raw: torch.Tensor, z_dim: Optional[int] = None) -> dist.TorchDistribution:
        """Turn raw head outputs ``(..., head_size)`` into ``q(z|x)`` with event shape ``(z_dim,)``."""
        z_dim = z_dim or self._z_dim(raw)
        chunks = raw.split([p.size(z_dim) for p in self.params], dim=-1)
        batch = raw.shape[:-1]
        return self.make(**{p.name: p.transform()(c.reshape(batch + p.shape(z_dim)))
                            for p, c in zip(self.params, chunks)})

    def raw_from_params(self, **values: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`from_raw`: the raw head output that yields ``values``."""
        raws = []
        for p in self.params:
            value = torch.as_tensor(values[p.name])
            raw = p.transform().inv(value)
            z_dim = value.shape[-1]
            raws.append(raw.reshape(value.shape[: value.dim() - len(p.shape(z_dim))] + (-1,)))
        return torch.cat(raws, dim=-1)


FAMILIES: Registry[Family] = Registry("family")
"""Posterior family name -> :class:`Family`; add one with ``register_family``."""


def _bounds(c: Constraint) -> Tuple[float, float]:
    return (getattr(c, "lower_bound", -math.inf), getattr(c, "upper_bound", math.inf))


def _coordinates(c: Constraint) -> Constraint:
    """The per-coordinate constraint of a vector support that is a product of intervals."""
    return c.base_constraint if isinstance(c, constraints.independent) else c


def support_str(c: Optional[Constraint]) -> str:
    """A short name for a latent support: ``Real()^k`` for a vector of reals, ``Simplex()`` ...

    ``None`` is the support of a prior made of the posterior's own distributions (the VampPrior).
    """
    if c is None:
        return "the posterior's"
    return f"{_coordinates(c)}^k" if isinstance(c, constraints.independent) else str(c)


def support_within(inner: Constraint, outer: Constraint) -> bool:
    """Whether ``outer`` covers ``inner`` for continuous supports (intervals up to their endpoints).

    An endpoint has probability zero under a continuous density, so ``[0, 1]``
    counts as inside ``(0, inf)``; event structure (simplex vs. real vectors) must match.
    """
    if isinstance(inner, constraints.independent) and isinstance(outer, constraints.independent):
        inner, outer = _coordinates(inner), _coordinates(outer)
    if inner is outer or str(inner) == str(outer):
        return True
    if inner.event_dim != outer.event_dim or inner.is_discrete != outer.is_discrete:
        return False
    if not all(hasattr(c, "lower_bound") or str(c) == "Real()" for c in (inner, outer)):
        return False  # e.g. a simplex against an interval
    (lo_i, hi_i), (lo_o, hi_o) = _bounds(inner), _bounds(outer)
    return lo_o <= lo_i and hi_i <= hi_o


def check_compatible(posterior: Family, prior_name: str, prior_support: Optional[Constraint]) -> None:
    """Refuse a posterior that can put mass where the prior has none (KL would be infinite).

    A prior support of ``None`` is the posterior's own (a prior made of the posterior's distributions).
    """
    if prior_support is not None and not support_within(posterior.support, prior_support):
        raise PyroVAEError(
            f"posterior {posterior.name!r} (support {support_str(posterior.support)}) is not inside "
            f"the support of prior {prior_name!r} ({support_str(prior_support)}): KL(q||p) would be infinite"
        )


class FixedPrior(nn.Module):
    """A prior ``p(z)`` from a parametric family with fixed, standard parameters.

    The parameters live in buffers so the prior follows the VAE across devices
    and dtypes; the model's plates broadcast it over data points. ``y`` is the
    hook for class-conditional priors and is ignored here.
    """

    def __init__(self, family: ParametricFamily, z_dim: int) -> None:
        super().__init__()
        self.family = family
        for name, value in family.standard.items():
            self.register_buffer(name, torch.full((z_dim,), float(value)))

    def forward(self, y: Optional[torch.Tensor] = None) -> dist.TorchDistribution:
        """The prior distribution, event shape ``(z_dim,)``."""
        if getattr(self.family, "standard_dist", None) is not None:
            return self.family.standard_dist(*(getattr(self, name) for name in self.family.standard)).to_event(1)
        return self.family.make(**{name: getattr(self, name) for name in self.family.standard
                                   if name not in self.family.fixed})


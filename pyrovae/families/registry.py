"""The family and prior registries, and the one call that registers a family.

Registering a family with standard parameters also makes it available as a
fixed prior, so ``--posterior X`` and ``--prior X`` both resolve at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn
from torch.distributions.constraints import Constraint

from ..registry import Registry
from .base import FAMILIES, Family, FixedPrior


@dataclass(frozen=True)
class PriorSpec:
    """A registered prior.

    :param name: registry name.
    :param build: ``build(z_dim) -> nn.Module`` whose ``forward(y=None)`` returns ``p(z)`` with
        event shape ``(z_dim,)``; ``y`` (class labels) is the hook for class-conditional priors.
    :param support: the support of ``z``, checked against the posterior's.
    :param description: one line for ``pyrovae families``.
    """

    name: str
    build: Callable[[int], nn.Module]
    support: Constraint
    description: str = ""


PRIORS: Registry[PriorSpec] = Registry("prior")
"""Prior name -> :class:`PriorSpec`: every family with standard parameters, and ``mog``."""


def register_prior(spec: PriorSpec, *, overwrite: bool = False) -> PriorSpec:
    """Add a prior to the registry."""
    return PRIORS.register(spec.name, spec, overwrite=overwrite)


def register_family(family: Family, *, overwrite: bool = False) -> Family:
    """Add ``family`` to the registry (and, if it has standard parameters, as a fixed prior)."""
    FAMILIES.register(family.name, family, overwrite=overwrite)
    if getattr(family, "standard", None):
        standard = ", ".join(f"{k}={v:g}" for k, v in family.standard.items())
        register_prior(PriorSpec(family.name, lambda z_dim: FixedPrior(family, z_dim), family.support,
                                 f"{family.name}({standard}) per coordinate"), overwrite=overwrite)
    return family

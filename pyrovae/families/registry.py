"""The family and prior registries, and the one call that registers a family.

Registering a family with standard parameters also makes it available as a
fixed prior, so ``--posterior X`` and ``--prior X`` both resolve at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import torch
from torch import nn
from torch.distributions import Distribution
from torch.distributions.constraints import Constraint

from ..errors import PyroVAEError
from ..registry import Registry
from .base import FAMILIES, Family, FixedPrior


class EncoderView(NamedTuple):
    """What a prior built from the VAE's own encoder receives (e.g. the VampPrior)."""

    #: Size of a data row (and of a pseudo-input).
    x_dim: int
    #: Rows ``(K, x_dim)`` -> ``q(z|u)`` with batch shape ``(K,)``: the VAE's encoder and posterior
    #: head. A plain callable, not a module: its weights belong to the VAE and are registered there once.
    encode: Callable[[torch.Tensor], Distribution]
    #: The posterior head (raw outputs -> ``q``), to check what the prior can do with ``q``.
    posterior: nn.Module
    #: Raw encoder outputs per row.
    head_size: int
    #: Whether the encoder also reads class labels (``conditional="full"``).
    labelled: bool = False


@dataclass(frozen=True)
class PriorSpec:
    """A registered prior.

    :param name: registry name.
    :param build: ``build(z_dim) -> nn.Module`` whose ``forward(y=None)`` returns ``p(z)`` with
        event shape ``(z_dim,)``; ``y`` (class labels) is the hook for class-conditional priors.
        With ``uses_encoder`` it is ``build(z_dim, encoder)``, ``encoder`` an :class:`EncoderView`.
    :param support: the support of ``z``, checked against the posterior's; ``None`` for a prior made
        of the posterior's own distributions (its support is the posterior's).
    :param description: one line for ``pyrovae families``.
    :param uses_encoder: the prior is built from the VAE's encoder (the VampPrior).
    """

    name: str
    build: Callable[..., nn.Module]
    support: Optional[Constraint]
    description: str = ""
    uses_encoder: bool = False

    def make(self, z_dim: int, encoder: Optional[EncoderView] = None) -> nn.Module:
        """The prior module for ``z_dim`` latents; ``encoder`` is needed where :attr:`uses_encoder`."""
        if not self.uses_encoder:
            return self.build(z_dim)
        if encoder is None:
            raise PyroVAEError(f"prior {self.name!r} is built from a VAE's encoder; build it with the VAE")
        return self.build(z_dim, encoder)


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

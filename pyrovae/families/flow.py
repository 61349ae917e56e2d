"""A normalizing-flow posterior: an amortized diagonal Normal pushed through Pyro transforms.

``q(z|x) = T_K o ... o T_1 # N(mu(x), sigma(x))`` with inverse autoregressive
flow layers (Kingma et al. 2016) from ``pyro.distributions.transforms``. The
transforms are global parameters of the guide; the base Normal is amortized.
Its density is exact (change of variables), so ``mc`` and ``auto`` apply; no
closed-form KL exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pyro.distributions as dist
import torch
from pyro.distributions.transforms import affine_autoregressive
from torch import nn
from torch.distributions import constraints

from ..errors import PyroVAEError
from .base import FAMILIES, Family


class FlowHead(nn.Module):
    """Posterior head: the base family's distribution followed by learned transforms."""

    def __init__(self, base: Family, z_dim: int, transforms: nn.ModuleList) -> None:
        super().__init__()
        self.base = base.posterior_head(z_dim)
        self.transforms = transforms

    def forward(self, raw: torch.Tensor) -> dist.TorchDistribution:
        return dist.TransformedDistribution(self.base(raw), list(self.transforms))


@dataclass(frozen=True)
class FlowFamily(Family):
    """A base family (default ``normal``) followed by ``num_transforms`` flow layers.

    :param make_transform: ``make_transform(z_dim) -> TransformModule``, by
        default Pyro's ``affine_autoregressive`` (IAF) with hidden width ``4 z_dim``.
    """

    name: str
    num_transforms: int = 2
    base: str = "normal"
    make_transform: Callable[[int], nn.Module] = field(
        default=lambda z_dim: affine_autoregressive(z_dim, hidden_dims=[4 * z_dim]))
    route: str = "flow"
    default_prior: str = "normal"
    description: str = "IAF flow over an amortized diagonal Normal"

    @property
    def support(self) -> constraints.Constraint:
        return constraints.independent(constraints.real, 1)

    def head_size(self, z_dim: int) -> int:
        return FAMILIES[self.base].head_size(z_dim)

    def posterior_head(self, z_dim: int) -> nn.Module:
        if z_dim < 2:
            raise PyroVAEError(f"family {self.name!r} needs at least 2 latent dimensions, got {z_dim}")
        layers = nn.ModuleList(self.make_transform(z_dim) for _ in range(self.num_transforms))
        return FlowHead(FAMILIES[self.base], z_dim, layers)

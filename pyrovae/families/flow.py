"""Normalizing-flow posteriors: an amortized diagonal Normal pushed through Pyro transforms.

``q(z|x) = T_K o ... o T_1 # N(mu(x), sigma(x))`` with inverse autoregressive
flow layers (Kingma et al. 2016) from ``pyro.distributions.transforms``.

- :class:`AmortizedFlowFamily` (``iaf``) is the flow of Kingma et al. (2016), section 4: the
  encoder also emits a context vector ``h``, and every autoregressive layer reads it
  (``z_t = mu_t(z_{t-1}, h) + sigma_t(z_{t-1}, h) * z_{t-1}``, Pyro's affine autoregressive
  layer), so the whole flow, not only its base, depends on ``x``.
- :class:`FlowFamily` (``iaf-global``) keeps the layers as global parameters of the guide that
  do not see ``x``; it was ``iaf`` before the amortized flow, and old runs load as it.

Their density is exact (change of variables), so ``mc`` and ``auto`` apply; no closed-form KL exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import pyro.distributions as dist
import torch
from pyro.distributions.transforms import affine_autoregressive, conditional_affine_autoregressive
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


class ContextFlow(dist.TransformedDistribution):
    """The amortized flow's ``q(z|x)``: a base distribution through conditional layers, all at context ``h``.

    An ordinary :class:`~pyro.distributions.TransformedDistribution` over the layers conditioned on
    ``h`` (Pyro's ``ConditionalTransformModule.condition``), which also keeps ``layers`` and the
    per-row ``context`` so that it can be expanded or gathered over rows (data-parallel noise).

    :param base_dist: the base distribution, batch shape that of the rows.
    :param layers: conditional transform modules.
    :param context: ``h``, shape ``batch_shape + (context size,)``.
    """

    def __init__(self, base_dist: dist.TorchDistribution, layers: Sequence[nn.Module], context: torch.Tensor,
                 validate_args=None) -> None:
        self.layers, self.context = list(layers), context
        super().__init__(base_dist, [t.condition(context) for t in self.layers], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> "ContextFlow":
        """The flow for a larger batch (e.g. a particle dimension): base and context expanded."""
        batch_shape = torch.Size(batch_shape)
        return type(self)(self.base_dist.expand(batch_shape), self.layers,
                          self.context.expand(batch_shape + self.context.shape[-1:]))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log q(value)``: the base density minus each layer's log-determinant (change of variables).

        Inverting a conditional layer (to score a value the flow did not draw) starts from the
        value's batch shape and Pyro expands the context to it, which fails when the value only
        broadcasts against the batch (a VampPrior scores ``z`` of shape ``(N, 1, D)`` under ``K``
        components); such a value is expanded first. A drawn value has the full shape and keeps its cache.
        """
        shape = torch.broadcast_shapes(value.shape, self.batch_shape + self.event_shape)
        return super().log_prob(value if value.shape == shape else value.expand(shape))


class ContextFlowHead(nn.Module):
    """Posterior head of the amortized IAF: raw outputs ``[base head | context h]``.

    Every conditional transform reads ``h`` (Kingma et al. 2016, section 4).
    """

    def __init__(self, base: Family, z_dim: int, context_dim: int, transforms: nn.ModuleList) -> None:
        super().__init__()
        self.base = base.posterior_head(z_dim)
        self.sizes = (base.head_size(z_dim), context_dim)
        self.transforms = transforms

    def forward(self, raw: torch.Tensor) -> dist.TorchDistribution:
        """``q(z|x)`` from raw outputs ``(..., base head size + context size)``."""
        base_raw, context = raw.split(self.sizes, dim=-1)
        return ContextFlow(self.base(base_raw), self.transforms, context)


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
        return FlowHead(FAMILIES[self.base], z_dim, self._layers(z_dim))

    def _layers(self, z_dim: int) -> nn.ModuleList:
        if z_dim < 2:
            raise PyroVAEError(f"family {self.name!r} needs at least 2 latent dimensions, got {z_dim}")
        return nn.ModuleList(self.make_transform(z_dim) for _ in range(self.num_transforms))


def _conditional_iaf(z_dim: int) -> nn.Module:
    return conditional_affine_autoregressive(z_dim, 2 * z_dim, hidden_dims=[4 * z_dim])


@dataclass(frozen=True)
class AmortizedFlowFamily(FlowFamily):
    """The inverse autoregressive flow of Kingma et al. (2016): every layer reads a context ``h(x)``.

    The encoder's raw head is the base family's head followed by ``context_dim(z_dim)`` context
    outputs (``2 z_dim`` by default). ``num_transforms`` sets the number of flow layers; register
    another depth with ``register_family(AmortizedFlowFamily("iaf-8", num_transforms=8))``.

    :param make_transform: ``make_transform(z_dim) -> ConditionalTransformModule`` whose
        ``condition(h)`` is a transform; by default Pyro's ``conditional_affine_autoregressive``
        with context size ``2 z_dim`` and hidden width ``4 z_dim``.
    :param context_dim: ``context_dim(z_dim)``, the size of ``h``; it must match ``make_transform``.
    """

    make_transform: Callable[[int], nn.Module] = _conditional_iaf
    context_dim: Callable[[int], int] = field(default=lambda z_dim: 2 * z_dim)
    description: str = "amortized IAF (Kingma et al. 2016): the encoder's context h feeds every layer"

    def head_size(self, z_dim: int) -> int:
        return FAMILIES[self.base].head_size(z_dim) + self.context_dim(z_dim)

    def posterior_head(self, z_dim: int) -> nn.Module:
        return ContextFlowHead(FAMILIES[self.base], z_dim, self.context_dim(z_dim), self._layers(z_dim))

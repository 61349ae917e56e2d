"""Several stochastic layers: ``p(z_L) p(z_{L-1}|z_L) ... p(x|z_1)`` with a bottom-up guide.

The two-stochastic-layer VAE of Burda et al. 2015 (section 5; 784-100-100-z1(100)-50-50-z2(50))
generalized to ``L`` layers. The guide is ``q(z_1|x) q(z_2|z_1) ... q(z_L|z_{L-1})`` and the model
``p(z_L) p(z_{L-1}|z_L) ... p(z_1|z_2) p(x|z_1)`` (Burda et al. 2015, section 5). Every conditional
is a registered family whose raw parameters come from its own MLP: the guide's layers use the
posterior family's head, and so do the model's conditional priors ``p(z_l|z_{l+1})`` (a Normal
conditional prior for ``normal``); the top prior ``p(z_L)`` is the VAE's prior.

:class:`LatentStack` holds the networks *between* stochastic layers; the VAE's own encoder
(``x -> q(z_1|x)``), decoder (``z_1 -> p(x|z_1)``) and prior stay where they are. Each layer is
its own Pyro sample site: ``z`` for one layer (a one-layer stack has no parameters, so a
one-layer VAE is exactly the model it always was), ``z1 ... zL`` bottom-up for more.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from .errors import PyroVAEError
from .families.base import Family
from .networks import mlp
from .summaries import posterior_point
from .validation import check_positive

__all__ = ["LatentStack", "latent_sizes", "layer_hidden", "site_names"]

#: What ``z_dim`` may be: one size, or one size per stochastic layer, bottom-up.
Sizes = Union[int, Sequence[int]]


def latent_sizes(z_dim: Sizes) -> Tuple[int, ...]:
    """One latent size per stochastic layer, bottom-up: ``20 -> (20,)``, ``(100, 50) -> (100, 50)``."""
    if isinstance(z_dim, int):
        check_positive(z_dim=z_dim)
        return (z_dim,)
    sizes = tuple(z_dim)
    if not sizes:
        raise PyroVAEError("z_dim needs at least one latent size")
    check_positive(**{f"z_dim[{i}]": z for i, z in enumerate(sizes)})
    return sizes


def compact_sizes(z_dim: Sizes) -> Sizes:
    """``z_dim`` as a VAE stores it: an int for one layer (as it always was), else a tuple."""
    sizes = latent_sizes(z_dim)
    return sizes[0] if len(sizes) == 1 else sizes


def _is_nested(hidden) -> bool:
    return any(isinstance(h, (tuple, list)) for h in hidden)


def layer_hidden(hidden: Sequence, layers: int) -> Tuple[Tuple[int, ...], ...]:
    """One hidden-size list per stochastic layer: a flat list is reused for every layer.

    ``hidden[l]`` sizes the networks into and out of layer ``l + 1``: the encoder ``x -> z_1`` and
    decoder ``z_1 -> x`` for the first, ``z_l -> z_{l+1}`` and back for the others.
    """
    if not _is_nested(hidden):
        return (tuple(hidden),) * layers
    if len(hidden) != layers:
        raise PyroVAEError(f"hidden has {len(hidden)} lists for {layers} stochastic layers; give one list per "
                           "layer (e.g. --hidden 100,100/50,50) or a single list for every layer")
    return tuple(tuple(h) for h in hidden)


def compact_hidden(hidden: Sequence) -> Tuple:
    """``hidden`` as a VAE and ``config.json`` store it: flat where one list serves every layer."""
    if not _is_nested(hidden):
        return tuple(hidden)
    lists = tuple(tuple(h) for h in hidden)
    return lists[0] if len(set(lists)) == 1 else lists


def site_names(layers: int) -> Tuple[str, ...]:
    """The Pyro sample sites of the latent layers, bottom-up: ``("z",)`` or ``("z1", ..., "zL")``."""
    return ("z",) if layers == 1 else tuple(f"z{l}" for l in range(1, layers + 1))


def _conditional(z_in: int, hidden: Sequence[int], z_out: int, family: Family, activation: str) -> nn.Sequential:
    """``z_in -> family`` distribution over ``z_out``: an MLP and the family's head."""
    return nn.Sequential(mlp([z_in, *hidden, family.head_size(z_out)], activation), family.posterior_head(z_out))


class LatentStack(nn.Module):
    """The stochastic layers of a VAE and the networks between them.

    :param sizes: latent sizes, bottom-up (see :func:`latent_sizes`).
    :param hidden: one hidden-size list per layer (see :func:`layer_hidden`); ``hidden[l]`` sizes
        ``q(z_{l+1}|z_l)`` and, mirrored, ``p(z_l|z_{l+1})``.
    :param family: the posterior family of every conditional.
    :param activation: activation of the MLPs.
    """

    def __init__(self, sizes: Sequence[int], hidden: Sequence[Sequence[int]], family: Family,
                 activation: str = "relu") -> None:
        super().__init__()
        self.sizes, self.names = tuple(sizes), site_names(len(sizes))
        pairs = list(zip(self.sizes[:-1], self.sizes[1:], hidden[1:]))
        #: ``up[l]``: ``z_{l+1} -> q(z_{l+2}|z_{l+1})`` (guide; 0-based ``l``).
        self.up = nn.ModuleList(_conditional(lo, h, hi, family, activation) for lo, hi, h in pairs)
        #: ``down[l]``: ``z_{l+2} -> p(z_{l+1}|z_{l+2})`` (model's conditional priors).
        self.down = nn.ModuleList(_conditional(hi, tuple(reversed(h)), lo, family, activation)
                                  for lo, hi, h in pairs)

    def model(self, prior: dist.TorchDistribution) -> torch.Tensor:
        """Sample ``z_L ~ p(z_L)``, then each ``z_l ~ p(z_l|z_{l+1})`` down to ``z_1``; returns ``z_1``."""
        if self.up:
            pyro.module("down", self.down)
        z = pyro.sample(self.names[-1], prior)
        for name, net in zip(reversed(self.names[:-1]), reversed(self.down)):
            z = pyro.sample(name, net(z))
        return z

    def guide(self, posterior: dist.TorchDistribution) -> torch.Tensor:
        """Sample ``z_1 ~ q(z_1|x)`` (``posterior``), then each ``z_{l+1} ~ q(z_{l+1}|z_l)``; returns ``z_L``."""
        if self.up:
            pyro.module("up", self.up)
        z = pyro.sample(self.names[0], posterior)
        for name, net in zip(self.names[1:], self.up):
            z = pyro.sample(name, net(z))
        return z

    def descend(self, z_top: torch.Tensor, draw: bool = False) -> torch.Tensor:
        """``z_1`` below a top-layer ``z_L``: draws of each ``p(z_l|z_{l+1})``, or its point summary."""
        z = z_top
        for net in reversed(self.down):
            p = net(z)
            z = p.sample() if draw else posterior_point(p)
        return z

    def ascend(self, posterior: dist.TorchDistribution) -> dist.TorchDistribution:
        """``q(z_L|z_{L-1})`` at the chain of point codes ``z_l = point(q(z_l|z_{l-1}))`` above ``q(z_1|x)``."""
        q = posterior
        for net in self.up:
            q = net(posterior_point(q))
        return q

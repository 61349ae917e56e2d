"""Class-conditional VAEs: where the class label ``y`` enters the model, resolved by name.

``CONDITIONINGS`` maps a name to a :class:`Conditioning`:

- ``none``: the plain VAE, ``p(z) p(x|z)`` and ``q(z|x)``.
- ``prior``: the simple CVAE of Su Jianlin, "Variational autoencoders (1)", 2018
  (eq. 8). The prior is ``p(z|y) = N(mu_y, I)`` with a learned mean per class
  (:class:`ClassMeanPrior`), the encoder and decoder are unchanged, and the KL of
  a diagonal Gaussian posterior has the closed form
  ``1/2 sum_i ((mu_i - mu^y_i)^2 + sigma_i^2 - log sigma_i^2 - 1)``.
- ``full``: the standard CVAE (Sohn et al. 2015): the one-hot label is fed to
  the encoder ``q(z|x,y)`` and the decoder ``p(x|z,y)``; the prior is the usual one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pyro.distributions as dist
import torch
from torch import nn

from .errors import PyroVAEError
from .registry import Registry


@dataclass(frozen=True)
class Conditioning:
    """Where the class label enters a VAE.

    :param name: registry name (``--conditional``).
    :param encoder_label: the one-hot label is concatenated to the encoder's input.
    :param decoder_label: the one-hot label is concatenated to the decoder's input ``z``.
    :param class_prior: the prior is :class:`ClassMeanPrior`, ``N(mu_y, I)``.
    :param description: one line for the documentation.
    """

    name: str
    encoder_label: bool
    decoder_label: bool
    class_prior: bool
    description: str = ""

    @property
    def needs_labels(self) -> bool:
        """Whether the model and guide need class labels ``y``."""
        return self.encoder_label or self.decoder_label or self.class_prior


CONDITIONINGS: Registry[Conditioning] = Registry("conditional mode")
"""Conditioning name (``--conditional``, ``VAE(conditional=...)``) -> :class:`Conditioning`.

``none``, ``prior`` (prior ``N(mu_y, I)``, Su 2018, eq. 8) and ``full`` (one-hot label into the
encoder and the decoder, Sohn et al. 2015).
"""
for _c in (Conditioning("none", False, False, False, "unconditional VAE"),
           Conditioning("prior", False, False, True, "prior N(mu_y, I) with a learned mean per class (Su 2018, eq. 8)"),
           Conditioning("full", True, True, False, "CVAE: one-hot label fed to the encoder and the decoder")):
    CONDITIONINGS.register(_c.name, _c)


class ClassMeanPrior(nn.Module):
    """``p(z|y) = N(mu_y, I)``: a learned mean per class, unit variance (Su 2018, eq. 8).

    The means start at zero and move apart because each class pulls its own
    mean towards its codes. With a diagonal Normal posterior the pair is
    ``Independent(Normal)`` on both sides, so torch's registered Normal-Normal
    KL gives eq. 8 in closed form and ``analytic`` applies.
    """

    def __init__(self, z_dim: int, num_classes: int) -> None:
        super().__init__()
        self.means = nn.Parameter(torch.zeros(num_classes, z_dim))

    def forward(self, y: Optional[torch.Tensor] = None) -> dist.TorchDistribution:
        """``N(mu_y, I)`` for integer labels ``y`` of shape ``(M,)``: batch ``(M,)``, event ``(z_dim,)``."""
        if y is None:
            raise PyroVAEError("the class-conditional prior N(mu_y, I) needs class labels y")
        loc = self.means[y]
        return dist.Normal(loc, torch.ones_like(loc)).to_event(1)


def with_label(h: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    """``[h | onehot]`` along the last dimension, the label broadcast over ``h``'s leading (particle) dims."""
    return torch.cat([h, onehot.expand(*h.shape[:-1], onehot.shape[-1])], dim=-1)


def count_classes(labels: torch.Tensor) -> int:
    """The number of classes of integer labels ``0..C-1``: ``max + 1``."""
    if labels is None or len(labels) == 0:
        raise PyroVAEError("a conditional VAE needs labelled data; this dataset has no class labels")
    return int(labels.max()) + 1

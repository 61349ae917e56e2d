"""Registry of decoder likelihoods ``p_theta(x|z)``.

A likelihood is a small :class:`torch.nn.Module` that turns the decoder's raw
outputs into a distribution over one data point (event shape ``(x_dim,)``)
and may own parameters of its own (a learned noise scale). Each entry also
states the support its data must lie in, so bad data is refused before any
training starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pyro.distributions as dist
import torch
from torch import nn
from torch.distributions import biject_to, constraints
from torch.distributions.constraints import Constraint

from .errors import PyroVAEError
from .registry import Registry


@dataclass(frozen=True)
class LikelihoodSpec:
    """How to build one likelihood.

    :param name: registry name.
    :param build: ``build(x_dim) -> nn.Module``; the module maps raw decoder
        outputs ``(..., head_size)`` to a distribution with event shape ``(x_dim,)``.
    :param support: the values data must take, checked before training.
    :param outputs_per_dim: raw decoder outputs per data dimension.
    :param description: one line for ``pyrovae families``.
    """

    name: str
    build: Callable[[int], nn.Module]
    support: Constraint
    outputs_per_dim: int = 1
    description: str = ""

    def head_size(self, x_dim: int) -> int:
        """How many raw decoder outputs one data point needs."""
        return self.outputs_per_dim * x_dim

    def validate(self, x: torch.Tensor, what: str = "data") -> None:
        """Raise :class:`PyroVAEError` if ``x`` has values outside this likelihood's support."""
        ok = self.support.check(x)
        if not bool(ok.all()):
            bad = x[~ok]
            raise PyroVAEError(
                f"{what} has {bad.numel()} values outside the support of the {self.name!r} "
                f"likelihood ({self.support}); e.g. {bad.flatten()[0].item():g} "
                f"(data range {x.min().item():g}..{x.max().item():g})"
            )


class BernoulliLikelihood(nn.Module):
    """``x ~ Bernoulli(sigmoid(logits))`` per pixel (paper appendix C.1).

    Validation is off so grey levels in [0, 1] are accepted as targets, as in
    Pyro's VAE example; pyrovae checks the [0, 1] range itself up front.
    """

    def forward(self, logits: torch.Tensor) -> dist.TorchDistribution:
        """The likelihood given decoder logits."""
        return dist.Bernoulli(logits=logits, validate_args=False).to_event(1)


class NormalLikelihood(nn.Module):
    """``x ~ Normal(mu, sigma)`` with a learned global ``sigma`` (paper appendix C.2).

    ``sigma = biject_to(positive)(raw_scale)``, initialised to ``scale``.
    """

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self._to_scale = biject_to(constraints.positive)
        self.raw_scale = nn.Parameter(self._to_scale.inv(torch.tensor(float(scale))))

    @property
    def scale(self) -> torch.Tensor:
        """The current noise standard deviation."""
        return self._to_scale(self.raw_scale)

    def forward(self, loc: torch.Tensor) -> dist.TorchDistribution:
        """The likelihood given decoder means."""
        return dist.Normal(loc, self.scale, validate_args=False).to_event(1)


LIKELIHOODS: Registry[LikelihoodSpec] = Registry("likelihood")


def register_likelihood(spec: LikelihoodSpec, *, overwrite: bool = False) -> LikelihoodSpec:
    """Add a likelihood to the registry."""
    return LIKELIHOODS.register(spec.name, spec, overwrite=overwrite)


register_likelihood(LikelihoodSpec(
    "bernoulli", lambda x_dim: BernoulliLikelihood(), constraints.unit_interval,
    description="binary or grey-level pixels in [0, 1], decoder outputs logits",
))
register_likelihood(LikelihoodSpec(
    "normal", lambda x_dim: NormalLikelihood(), constraints.real,
    description="real-valued data, decoder outputs the mean, one learned noise scale",
))


"""Registry of decoder likelihoods ``p_theta(x|z)``.

A likelihood is a small :class:`torch.nn.Module` that turns the decoder's raw
outputs into a distribution over one data point (event shape ``(x_dim,)``)
and may own parameters of its own (a learned noise scale). Each entry also
states the support its data must lie in, so bad data is refused before any
training starts.

Every distribution here is built with ``validate_args=False``: it sits in the
training hot path, and the data were already checked once, up front, by
:meth:`LikelihoodSpec.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Tuple

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F
from torch.distributions import biject_to, constraints
from torch.distributions.constraints import Constraint

from .errors import PyroVAEError
from .registry import Registry

#: Grey levels of an 8-bit image, the classes of the ``categorical`` likelihood.
GREY_LEVELS = 256

#: Noise scale of ``normal-fixed``; see :class:`FixedNormalLikelihood`.
FIXED_NORMAL_SCALE = 0.1


class OpenInterval(Constraint):
    """The open interval ``(lower_bound, upper_bound)``, end points excluded.

    torch has closed and half-open intervals only; a Beta density is infinite
    or zero at exactly 0 or 1, so its data must stay strictly inside.
    """

    def __init__(self, lower_bound: float, upper_bound: float) -> None:
        self.lower_bound, self.upper_bound = lower_bound, upper_bound
        super().__init__()

    def check(self, value: torch.Tensor) -> torch.Tensor:
        """Elementwise ``lower < value < upper``."""
        return (self.lower_bound < value) & (value < self.upper_bound)

    def __repr__(self) -> str:
        return f"OpenInterval(lower_bound={self.lower_bound}, upper_bound={self.upper_bound})"


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@dataclass(frozen=True)
class LikelihoodSpec:
    """How to build one likelihood.

    :param name: registry name.
    :param build: ``build(x_dim) -> nn.Module``; the module maps raw decoder
        outputs ``(..., head_size)`` to a distribution with event shape ``(x_dim,)``.
    :param support: the values data must take, checked before training.
    :param outputs_per_dim: raw decoder outputs per data dimension.
    :param description: one line for ``pyrovae families``.
    :param encoder_input: how the encoder sees the data (the likelihood always scores the data
        itself): e.g. levels 0..255 as x / 255, counts as log(1 + x), so raw magnitudes do not
        saturate the first layer.
    :param binary: the likelihood is for binary data, so binarizing grey levels (static or
        dynamic, as in the AEVB paper's MNIST set-up) applies to it; for every other likelihood
        binarization would change the data it models, and is refused.
    :param interleaved: with several raw outputs per dimension, they are laid out dimension by
        dimension, ``(x_dim, outputs_per_dim)`` (``categorical``'s logits of each pixel); otherwise
        one block of ``x_dim`` per output (``beta``'s ``[log alpha | log beta]``). The conv
        decoder emits one channel per output and lays the channels out accordingly.
    """

    name: str
    build: Callable[[int], nn.Module]
    support: Constraint
    outputs_per_dim: int = 1
    description: str = ""
    encoder_input: Callable[[torch.Tensor], torch.Tensor] = _identity
    binary: bool = False
    interleaved: bool = False

    def head_size(self, x_dim: int) -> int:
        """How many raw decoder outputs one data point needs."""
        return self.outputs_per_dim * x_dim

    def validate(self, x: torch.Tensor, what: str = "data") -> None:
        """Raise :class:`PyroVAEError` if ``x`` has values outside this likelihood's support.

        The one-line message names the count, the support, the first offending
        value and the data range, e.g. a non-integer count for ``poisson``.
        """
        ok = self.support.check(x)
        if not bool(ok.all()):
            bad = x[~ok]
            raise PyroVAEError(
                f"{what} has {bad.numel()} values outside the support of the {self.name!r} "
                f"likelihood ({self.support}); e.g. {_show(bad.flatten()[0])} "
                f"(data range {_show(x.min())}..{_show(x.max())})"
            )


def _show(value: torch.Tensor) -> str:
    """A scalar as ``:g`` where that is exact, else as its shortest round-trip repr.

    ``:g`` keeps six digits, so an unrounded grey level ``127.00001`` would print as a
    valid-looking ``127`` in an integer-support error; numpy's repr shows it in full.
    """
    short = f"{value.item():g}"
    return short if float(short) == value.item() else str(value.detach().cpu().numpy())


# -- likelihoods with no parameters of their own -----------------------------------------


class PixelBernoulli(dist.Independent):
    """Independent Bernoulli pixels, ``Bernoulli(logits=logits).to_event(1)``, with a leaner log-density.

    ``log p(x|z) = -sum_d BCE(logits_d, x_d)`` (paper appendix C.1): summed over the pixels
    before the sign flips, so the step negates one number per image instead of every pixel,
    in the forward and the backward pass, and skips the broadcast of logits against ``x``.
    Everything else (sampling, mean, entropy, KL rules) is :class:`pyro.distributions.Independent`'s.
    """

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__(dist.Bernoulli(logits=logits, validate_args=False), 1, validate_args=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log p(value)`` summed over the last dimension; ``value`` may broadcast against the logits."""
        logits = self.base_dist.logits
        if value.shape != logits.shape:
            logits, value = torch.broadcast_tensors(logits, value)
        return -F.binary_cross_entropy_with_logits(logits, value, reduction="none").sum(-1)

    def expand(self, batch_shape, _instance=None) -> "PixelBernoulli":
        """The same pixels for a larger batch (Pyro's plates expand distributions)."""
        return type(self)(self.base_dist.logits.expand(torch.Size(batch_shape) + self.event_shape))


class BernoulliLikelihood(nn.Module):
    """``x ~ Bernoulli(sigmoid(logits))`` per pixel (paper appendix C.1).

    Validation is off so grey levels in [0, 1] are accepted as targets, as in
    Pyro's VAE example; pyrovae checks the [0, 1] range itself up front.
    """

    def forward(self, logits: torch.Tensor) -> dist.TorchDistribution:
        """The likelihood given decoder logits."""
        return PixelBernoulli(logits)


class ContinuousBernoulliLikelihood(nn.Module):
    """``x ~ ContinuousBernoulli(sigmoid(logits))`` per pixel, for grey levels in [0, 1].

    Loaiza-Ganem & Cunningham (2019): ``p(x|l) = C(l) l^x (1-l)^(1-x)`` with the
    normalizer ``C(l) = 2 artanh(1-2l) / (1-2l)`` (``C(1/2) = 2``) that the
    plain Bernoulli on grey levels leaves out, so this is a proper density.
    """

    def forward(self, logits: torch.Tensor) -> dist.TorchDistribution:
        """The likelihood given decoder logits."""
        return dist.ContinuousBernoulli(logits=logits, validate_args=False).to_event(1)


class PoissonLikelihood(nn.Module):
    """``x ~ Poisson(exp(log_rate))`` per dimension, for counts.

    ``exp`` is ``biject_to(positive)``: the decoder outputs the log-rate, the
    canonical (natural) parameter of the Poisson, as in a Poisson GLM.
    """

    def __init__(self) -> None:
        super().__init__()
        self._to_rate = biject_to(constraints.positive)

    def forward(self, log_rate: torch.Tensor) -> dist.TorchDistribution:
        """The likelihood given decoder log-rates."""
        return dist.Poisson(self._to_rate(log_rate), validate_args=False).to_event(1)


class BetaLikelihood(nn.Module):
    """``x ~ Beta(alpha, beta)`` per dimension, for data strictly inside (0, 1).

    The decoder outputs two values per dimension, laid out ``[log alpha | log beta]``
    (each ``x_dim`` wide): ``biject_to(positive)`` is ``exp``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._to_concentration = biject_to(constraints.positive)

    def forward(self, raw: torch.Tensor) -> dist.TorchDistribution:
        """The likelihood given the decoder's ``(..., 2 * x_dim)`` raw concentrations."""
        alpha, beta = self._to_concentration(raw).chunk(2, dim=-1)
        return dist.Beta(alpha, beta, validate_args=False).to_event(1)


class CategoricalLikelihood(nn.Module):
    """``x ~ Categorical(softmax(logits))`` over ``levels`` grey levels per pixel.

    A discrete pixel model in the spirit of PixelRNN's 256-way softmax (van den
    Oord et al. 2016), without the autoregression: pixels are independent given z.
    The decoder outputs ``levels`` logits per pixel, pixel-major:
    ``(..., x_dim * levels)`` is read as ``(..., x_dim, levels)``.
    """

    def __init__(self, levels: int = GREY_LEVELS) -> None:
        super().__init__()
        self.levels = levels

    def forward(self, logits: torch.Tensor) -> dist.TorchDistribution:
        """The likelihood given the decoder's ``(..., x_dim * levels)`` logits."""
        per_pixel = logits.unflatten(-1, (-1, self.levels))
        return dist.Categorical(logits=per_pixel, validate_args=False).to_event(1)


# -- location-scale likelihoods: the decoder outputs the location --------------------------


class LearnedScaleLikelihood(nn.Module):
    """``x ~ family(loc, scale)`` with the decoder's ``loc`` and a learned ``scale``.

    ``scale = biject_to(positive)(raw_scale)``, initialised to ``scale``;
    ``shape=()`` learns one global scale, ``shape=(x_dim,)`` one per dimension.
    Subclasses set ``family`` to a location-scale distribution class.
    """

    family: Callable[..., dist.TorchDistribution]

    def __init__(self, scale: float = 1.0, shape: Tuple[int, ...] = ()) -> None:
        super().__init__()
        self._to_scale = biject_to(constraints.positive)
        self.raw_scale = nn.Parameter(self._to_scale.inv(torch.full(shape, float(scale))))

    @property
    def scale(self) -> torch.Tensor:
        """The current noise scale (the standard deviation for a Normal)."""
        return self._to_scale(self.raw_scale)

    def forward(self, loc: torch.Tensor) -> dist.TorchDistribution:
        """The likelihood given decoder locations."""
        return self.family(loc, self.scale, validate_args=False).to_event(1)


class NormalLikelihood(LearnedScaleLikelihood):
    """``x ~ Normal(mu, sigma)`` with a learned ``sigma`` (paper appendix C.2).

    Global by default (``normal``); ``shape=(x_dim,)`` gives ``normal-pixel``.
    Per pixel, the likelihood is unbounded as sigma -> 0 on pixels that are
    constant in the data (MNIST's always-black borders), so long training can
    shrink their sigma without limit; ``normal-fixed`` avoids that.
    """

    family = dist.Normal


class LaplaceLikelihood(LearnedScaleLikelihood):
    """``x ~ Laplace(mu, b)`` with one learned global scale ``b``: an L1 reconstruction loss."""

    family = dist.Laplace


class FixedNormalLikelihood(nn.Module):
    """``x ~ Normal(mu, scale)`` with a fixed ``scale``, default 0.1.

    For grey levels in [0, 1], sigma = 0.1 is a tenth of the whole range: small
    enough that the reconstruction term, a scaled squared error
    ``-|x - mu|^2 / (2 * 0.1^2)`` (the MSE loss of many VAEs), outweighs the KL
    and the decoder must model the digit, yet a plausible pixel noise level.
    Being fixed, it cannot collapse the way a learned scale can on constant pixels.
    """

    def __init__(self, scale: float = FIXED_NORMAL_SCALE) -> None:
        super().__init__()
        self.scale = float(scale)

    def forward(self, loc: torch.Tensor) -> dist.TorchDistribution:
        """The likelihood given decoder means."""
        return dist.Normal(loc, self.scale, validate_args=False).to_event(1)


# -- the registry ------------------------------------------------------------------------

LIKELIHOODS: Registry[LikelihoodSpec] = Registry("likelihood")
"""Likelihood name -> :class:`LikelihoodSpec`; add one with :func:`register_likelihood`."""


def register_likelihood(spec: LikelihoodSpec, *, overwrite: bool = False) -> LikelihoodSpec:
    """Add a likelihood to the registry."""
    return LIKELIHOODS.register(spec.name, spec, overwrite=overwrite)


register_likelihood(LikelihoodSpec(
    "bernoulli", lambda x_dim: BernoulliLikelihood(), constraints.unit_interval,
    description="binary or grey-level pixels in [0, 1], decoder outputs logits", binary=True,
))
register_likelihood(LikelihoodSpec(
    "normal", lambda x_dim: NormalLikelihood(), constraints.real,
    description="real-valued data, decoder outputs the mean, one learned noise scale",
))
register_likelihood(LikelihoodSpec(
    "continuous-bernoulli", lambda x_dim: ContinuousBernoulliLikelihood(), constraints.unit_interval,
    description="grey levels in [0, 1] with the normalized continuous Bernoulli, decoder outputs logits",
))
register_likelihood(LikelihoodSpec(
    "normal-fixed", lambda x_dim: FixedNormalLikelihood(), constraints.real,
    description=f"real-valued data, decoder outputs the mean, fixed noise scale {FIXED_NORMAL_SCALE}",
))
register_likelihood(LikelihoodSpec(
    "normal-pixel", lambda x_dim: NormalLikelihood(shape=(x_dim,)), constraints.real,
    description="real-valued data, decoder outputs the mean, one learned noise scale per dimension",
))
register_likelihood(LikelihoodSpec(
    "laplace", lambda x_dim: LaplaceLikelihood(), constraints.real,
    description="real-valued data, decoder outputs the location, one learned Laplace scale",
))
register_likelihood(LikelihoodSpec(
    "beta", lambda x_dim: BetaLikelihood(), OpenInterval(0.0, 1.0), outputs_per_dim=2,
    description="data strictly inside (0, 1), decoder outputs both log-concentrations",
))
register_likelihood(LikelihoodSpec(
    "poisson", lambda x_dim: PoissonLikelihood(), constraints.nonnegative_integer,
    description="counts 0, 1, 2, ..., decoder outputs the log-rate", encoder_input=torch.log1p,
))
register_likelihood(LikelihoodSpec(
    "categorical", lambda x_dim: CategoricalLikelihood(), constraints.integer_interval(0, GREY_LEVELS - 1),
    outputs_per_dim=GREY_LEVELS,
    description=f"8-bit pixels 0..{GREY_LEVELS - 1} as {GREY_LEVELS} classes, decoder outputs their logits",
    encoder_input=lambda x: x / (GREY_LEVELS - 1), interleaved=True,
))

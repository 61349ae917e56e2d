"""The built-in posterior families, one ``register_family`` call each.

Routes follow Kingma & Welling 2013, section 2.4: location-scale
(``z = loc + scale * eps``), inverse CDF (``z = F^{-1}(u)``), composition
(a differentiable map of other reparameterized variables), and implicit
reparameterization (Figurnov et al. 2018: ``dz/dtheta = -dF/dtheta / q(z)``,
which torch uses for Gamma, Beta and Dirichlet).
"""

from __future__ import annotations

import math
from typing import Optional

import pyro.distributions as dist
import torch
from torch.distributions import constraints, transform_to
from torch.distributions.utils import clamp_probs
from torch.distributions.transforms import AffineTransform, ComposeTransform, ExpTransform

from .base import ParametricFamily, Param
from .flow import AmortizedFlowFamily, FlowFamily
from .registry import register_family

_real, _pos = constraints.real, constraints.positive

#: The encoder predicts log sigma^2 and sigma = exp(raw / 2) (Kingma & Welling 2013, appendix C.2).
LOG_VARIANCE = ComposeTransform([AffineTransform(0.0, 0.5), ExpTransform()])
_LOC = ("loc", _real)
_SCALE = ("scale", _pos)
_UNIT = {"loc": 0.0, "scale": 1.0}


def _location_scale(name, cls, description, route="location-scale", default_prior=None, **kw):
    register_family(ParametricFamily(name, cls, (_LOC, _SCALE), route, default_prior or name,
                                     standard=_UNIT, description=description, **kw))


class StandardNormal(dist.Normal):
    """``N(0, 1)`` per coordinate, with ``log p(z) = -z^2/2 - log(2 pi)/2``.

    The same law as ``Normal(loc=0, scale=1)`` (its ``loc``/``scale`` are there for KL rules
    and sampling), but its log-density skips the squares, logs and divisions by a unit scale
    that a general Normal spends on every coordinate of every step (``mc`` evaluates it).
    """

    def __init__(self, loc: torch.Tensor, scale: Optional[torch.Tensor] = None) -> None:
        super().__init__(torch.zeros_like(loc), torch.ones_like(loc), validate_args=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Elementwise ``log N(value; 0, 1)``, broadcast against the batch shape."""
        lp = value.pow(2).mul(-0.5).sub(_HALF_LOG_2PI)
        # broadcast_tensors, not torch.broadcast_shapes: in eager mode the latter imports
        # torch.fx's symbolic shapes and sympy (half a second) the first time it runs.
        return lp if lp.shape == self.batch_shape else torch.broadcast_tensors(lp, self.loc)[0]

    def expand(self, batch_shape, _instance=None) -> "StandardNormal":
        """The standard normal for a larger batch."""
        return type(self)(self.loc.expand(batch_shape))


_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)

register_family(ParametricFamily(
    "normal", dist.Normal, (_LOC, Param("scale", _pos, head=LOG_VARIANCE)), "location-scale",
    standard=_UNIT, standard_dist=StandardNormal,
    description="diagonal Gaussian, z = mu + sigma * eps; the head predicts log sigma^2"))


class Laplace(dist.Laplace):
    """Pyro's ``Laplace``, drawing the same noise whether it runs eagerly or is recorded.

    Under ``torch.jit.trace`` torch switches to ``rand * 2 - 1`` (no ``eps`` offset), so a
    recorded step would differ from the eager one in the last bits and the ``jit`` step would
    refuse the family. ``uniform_`` records fine, so both paths use torch's eager draw:
    ``u ~ U(eps - 1, 1)``, ``z = mu - b sign(u) log(1 - |u|)`` (inverse CDF).
    """

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        """A reparameterized draw of ``sample_shape`` (torch's eager code path)."""
        shape = self._extended_shape(sample_shape)
        u = self.loc.new(shape).uniform_(torch.finfo(self.loc.dtype).eps - 1, 1)
        return self.loc - self.scale * u.sign() * torch.log1p(-u.abs())


_location_scale("laplace", Laplace, "z = mu + b * Laplace(0, 1); heavier tails than the Normal")
register_family(ParametricFamily(
    "student-t", dist.StudentT, (_LOC, _SCALE), "location-scale", "normal",
    standard={"df": 5.0, **_UNIT}, fixed={"df": 5.0},
    description="heavy tails, 5 degrees of freedom, z = mu + sigma * t_5"))
_location_scale("logistic", dist.Logistic, "z = mu + s * log(u / (1 - u))", route="inverse-cdf")
_location_scale("cauchy", dist.Cauchy, "z = x0 + gamma * tan(pi (u - 1/2)); no mean, very heavy tails",
                route="inverse-cdf")
_location_scale("gumbel", dist.Gumbel, "z = mu - beta * log(-log u); skewed", route="inverse-cdf")
_location_scale("lognormal", dist.LogNormal, "z = exp(mu + sigma * eps) > 0", route="composition")
register_family(ParametricFamily(
    "gamma", dist.Gamma, (("concentration", _pos), ("rate", _pos)), "implicit", "gamma",
    standard={"concentration": 1.0, "rate": 1.0}, description="z > 0, implicit reparameterization"))
register_family(ParametricFamily(
    "exponential", dist.Exponential, (("rate", _pos),), "inverse-cdf", "exponential",
    standard={"rate": 1.0}, description="z = -log(u) / lambda > 0"))
register_family(ParametricFamily(
    "weibull", dist.Weibull, (("scale", _pos), ("concentration", _pos)), "inverse-cdf", "weibull",
    standard={"scale": 1.0, "concentration": 1.0}, description="z = lambda (-log u)^(1/k) > 0"))
register_family(ParametricFamily(
    "beta", dist.Beta, (("concentration1", _pos), ("concentration0", _pos)), "implicit", "beta",
    standard={"concentration1": 1.0, "concentration0": 1.0},
    description="z in (0, 1), implicit reparameterization through Gamma variables"))
class OpenKumaraswamy(dist.Kumaraswamy):
    """Kumaraswamy with samples kept inside (0, 1) and a density that stays finite near 1.

    ``z = (1 - u^(1/b))^(1/a)`` rounds to exactly 0 or 1 in float32 for extreme
    ``u``; clamping by the dtype's epsilon changes nothing in the interior. Near 1,
    ``z^a`` itself rounds to 1 and torch's change-of-variables density gives
    ``log 0``; the closed form with ``log(1 - z^a) = log(-expm1(a log z))`` does not.
    """

    def rsample(self, sample_shape=torch.Size()):
        return clamp_probs(super().rsample(sample_shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        # log q(z) = log a + log b + (a - 1) log z + (b - 1) log(1 - z^a)   (Kumaraswamy 1980)
        a, b = self.concentration1, self.concentration0
        log_z = value.log()
        return a.log() + b.log() + (a - 1) * log_z + (b - 1) * torch.log(-torch.expm1(a * log_z))


register_family(ParametricFamily(
    "kumaraswamy", OpenKumaraswamy, (("concentration1", _pos), ("concentration0", _pos)), "inverse-cdf",
    "kumaraswamy", standard={"concentration1": 1.0, "concentration0": 1.0},
    description="z = (1 - u^(1/b))^(1/a) in (0, 1): a Beta look-alike with a closed-form inverse CDF"))
register_family(ParametricFamily(
    "dirichlet", dist.Dirichlet, (("concentration", _pos),), "implicit", "dirichlet",
    standard={"concentration": 1.0}, event_dim=1,
    description="z on the simplex, normalized Gamma variables (implicit reparameterization)"))
register_family(ParametricFamily(
    "full-normal", dist.MultivariateNormal,
    # The Cholesky head: the lower triangle of a z x z raw block, diagonal through exp (torch's
    # LowerCholeskyTransform; lower_cholesky has transform_to but no bijection).
    (_LOC, Param("scale_tril", constraints.lower_cholesky, shape=lambda z: (z, z),
                 head=transform_to(constraints.lower_cholesky))), "location-scale",
    event_dim=1, description="full-covariance Gaussian, z = mu + L eps with a Cholesky head"))


def lowrank_normal(name: str, rank: int) -> ParametricFamily:
    """A Gaussian with covariance ``W W^T + diag(d)``, ``W`` of the given ``rank``."""
    return ParametricFamily(
        name, dist.LowRankMultivariateNormal,
        (_LOC, Param("cov_factor", _real, shape=lambda z: (z, rank)), ("cov_diag", _pos)),
        "location-scale", event_dim=1,
        description=f"Gaussian with rank-{rank} plus diagonal covariance, z = mu + W e1 + sqrt(d) e2")


register_family(lowrank_normal("lowrank-normal", rank=2))
register_family(AmortizedFlowFamily("iaf", num_transforms=2, description="2 amortized IAF layers (Kingma et al. "
                                                                         "2016): the encoder's context h feeds each"))
# The flow that was ``iaf`` before the amortized one (config.py loads old runs of ``iaf`` as it).
register_family(FlowFamily("iaf-global", num_transforms=2, description="2 global IAF layers (they do not see x) "
                                                                       "over an amortized diagonal Normal"))

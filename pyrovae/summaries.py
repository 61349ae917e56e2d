"""One point summary of a posterior ``q(z|x)``, shared by every figure and diagnostic.

The posterior *mean* is the usual code of a data point (active units, latent scatter plots,
reconstructions). It does not exist for every family: a Cauchy posterior has no mean (torch
returns NaN), and a flow has no closed-form mean. There the coordinate-wise *median* stands in:
in closed form through the inverse CDF where the family has one (Cauchy: its location), else
from samples. Every caller uses :func:`posterior_point`, so the ``latent`` figure, the ``kl``
figure's active units and :func:`pyrovae.active_units` always agree.

:func:`mean_image` is the point summary of the other side, the decoder ``p(x|z)``: its mean, which
every decoded image shows.
"""

from __future__ import annotations

import torch
from torch.distributions import Categorical, Distribution, Independent, TransformedDistribution

#: Samples whose coordinate-wise median stands in when neither a mean nor an inverse CDF exists.
MEDIAN_DRAWS = 64


def _mean(q: Distribution):
    try:
        mean = q.mean
    except NotImplementedError:
        return None
    return mean if bool(torch.isfinite(mean).all()) else None


def _icdf_median(q: Distribution):
    """The median ``F^-1(1/2)`` of an elementwise family (``Independent`` looked through).

    Not for transformed distributions: a transform that mixes coordinates (a flow) does not map
    the base's median to the coordinate-wise median.
    """
    base = q.base_dist if isinstance(q, Independent) else q
    if isinstance(base, TransformedDistribution):
        return None
    try:
        return base.icdf(torch.full_like(base.mean, 0.5))  # mean: NaN where undefined, right shape
    except NotImplementedError:
        return None


@torch.no_grad()
def posterior_point(q: Distribution, draws: int = MEDIAN_DRAWS) -> torch.Tensor:
    """The mean of ``q`` where it is defined and finite, else its coordinate-wise median.

    The median is exact where the family has an inverse CDF, else the median of ``draws``
    samples (run it on a seeded stream, e.g. :func:`pyrovae.evaluate.seeded`, to reproduce it).
    """
    for point in (_mean(q), _icdf_median(q)):
        if point is not None:
            return point
    return q.sample((draws,)).median(0).values


def mean_image(d: Distribution) -> torch.Tensor:
    """The mean of a decoder likelihood ``p(x|z)``, shape ``(..., x_dim)``.

    torch's Categorical has no finite mean; for pixel levels the expected level is used.
    """
    base = d.base_dist if isinstance(d, Independent) else d
    if isinstance(base, Categorical):
        levels = torch.arange(base.probs.shape[-1], dtype=base.probs.dtype, device=base.probs.device)
        return (base.probs * levels).sum(-1)
    return d.mean

"""Which (posterior, prior) pairs have a closed-form KL, and which sites use it.

Pyro's ``TraceMeanField_ELBO`` tries ``kl_divergence`` and silently falls
back to sampling. pyrovae's estimators need to *know* beforehand: ``analytic``
refuses the fallback, ``auto`` reports it. The answer depends only on the
structure of the two distributions (their classes and how they are wrapped),
so it is computed once per structure and memoized: the training step pays a
dictionary lookup, not a KL evaluation. Whether the closed form is also *valid* at a site
(its prior must not read guide samples drawn from the site itself, as in a hierarchical VAE)
is a question about the programs, answered by :mod:`pyrovae.coupling`.
"""

from __future__ import annotations

from typing import AbstractSet, Dict, Hashable

import torch
from torch.distributions import (Distribution, Independent, LowRankMultivariateNormal, MultivariateNormal,
                                 Normal, TransformedDistribution, kl_divergence, register_kl)
from torch.distributions.kl import _dispatch_kl, _kl_transformed_transformed

ANALYTIC, SAMPLED = "analytic", "sampled"
_MEMO: Dict[Hashable, bool] = {}
# Wrappers that only reshape or mask; error messages name what they wrap.
_WRAPPERS = {"Independent", "ExpandedDistribution", "MaskedDistribution"}


def _structure(d: Distribution) -> Hashable:
    """Class and wrapping of ``d`` (e.g. Independent(1, Normal)): all that decides if a KL is registered."""
    base = getattr(d, "base_dist", None)
    return (type(d), getattr(d, "reinterpreted_batch_ndims", None), None if base is None else _structure(base))


def _transformed(d: Distribution):
    while isinstance(d, Independent):
        d = d.base_dist
    return d if isinstance(d, TransformedDistribution) else None


def _same_transforms(q: Distribution, p: Distribution):
    """For two transformed distributions, whether their transforms are equal.

    torch's generic KL of transformed distributions exists only then, and for
    Weibull or Kumaraswamy the transforms carry the parameters, so this part of
    the answer is not structural and is checked on every call. A pair with a KL of its own (two
    Gumbels) never reaches the generic one, so its transforms, which compare tensor values, are
    not read: a captured step (:mod:`pyrovae.compiled`) cannot read values.
    """
    tq, tp = _transformed(q), _transformed(p)
    if tq is None or tp is None or _dispatch_kl(type(tq), type(tp)) is not _kl_transformed_transformed:
        return None
    return tq.transforms == tp.transforms


def has_closed_form_kl(q: Distribution, p: Distribution) -> bool:
    """Whether ``torch.distributions.kl_divergence(q, p)`` has a registered closed form."""
    key = (_structure(q), _structure(p), _same_transforms(q, p))
    if key not in _MEMO:
        try:
            kl_divergence(q, p)
            _MEMO[key] = True
        except NotImplementedError:
            _MEMO[key] = False
    return _MEMO[key]


def describe(d: Distribution) -> str:
    """Short name of a distribution, looking through ``Independent`` and similar wrappers.

    A masked distribution says so (``Normal.mask(False)``): its KL against an unmasked one has no
    closed form even where the unmasked pair has one.
    """
    base = getattr(d, "base_dist", None)
    if base is None or type(d).__name__ not in _WRAPPERS:
        return type(d).__name__
    mask = getattr(d, "_mask", None)
    suffix = "" if mask is None else f".mask({mask})" if isinstance(mask, bool) else ".mask(tensor)"
    return describe(base) + suffix



def latent_sites(model_trace, guide_trace):
    """Yield ``(name, model_site, guide_site)`` for every latent sample site of the model."""
    for name, site in model_trace.nodes.items():
        if site["type"] == "sample" and not site["is_observed"]:
            yield name, site, guide_trace.nodes[name]


def kl_routes(model_trace, guide_trace, coupled: AbstractSet[str] = frozenset()) -> Dict[str, str]:
    """For each latent site, ``"analytic"`` if its KL has a closed form, else ``"sampled"``.

    ``coupled``: sites whose prior reads guide samples drawn from the site itself
    (:func:`pyrovae.coupling.coupled_sites`); their closed form would be biased, so they are sampled.
    """
    return {
        name: ANALYTIC if name not in coupled and has_closed_form_kl(q["fn"], p["fn"]) else SAMPLED
        for name, p, q in latent_sites(model_trace, guide_trace)
    }


def _diagonal_normal(p: Independent) -> Normal:
    """The ``Normal`` inside a diagonal Gaussian ``Independent(Normal, 1)``."""
    if not isinstance(p.base_dist, Normal) or p.reinterpreted_batch_ndims != 1:
        raise NotImplementedError  # torch's KL protocol for "no closed form for this pair"
    return p.base_dist


# Full-covariance and low-rank posteriors under a diagonal Gaussian prior such as N(0, I).
# KL(q || p) = H(q, p) - H(q), and the cross-entropy against a diagonal p needs only q's mean m
# and marginal variances v (docs/theory.md, "KL of a full-covariance or low-rank Gaussian"):
#     H(q, p) = sum_i [log s_i + log(2 pi)/2 + (v_i + (m_i - mu_i)^2) / (2 s_i^2)]
#             = sum_i [v_i / (2 s_i^2) - log p(m)_i],  with p's own log-density at q's mean.
# This equals torch's Gaussian-Gaussian KL on p as a full MultivariateNormal, but skips its
# triangular solve, and it can be recorded (torch's rule infers shapes from tensors, which
# torch.jit.trace refuses), so these families train on the jit step.
@register_kl(MultivariateNormal, Independent)
@register_kl(LowRankMultivariateNormal, Independent)
def _kl_gaussian_diagonal(q: MultivariateNormal | LowRankMultivariateNormal, p: Independent) -> torch.Tensor:
    base = _diagonal_normal(p)
    cross = q.variance / (2 * base.scale.pow(2)) - base.log_prob(q.mean)
    return cross.sum(-1) - q.entropy()

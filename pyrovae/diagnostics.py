"""Gradient diagnostics and active latent units.

``gradient_samples`` draws many independent gradient estimates at fixed
parameters on one fixed minibatch, so that only the estimator's own noise
varies, grouped by network: the *encoder* (inference network and posterior
head) and the *decoder* (generative network, likelihood and prior).
``gradient_variance`` summarizes them: total variance ``tr Var[g]``, mean
squared norm ``E||g||^2`` and the signal-to-noise ratio
``||E g|| / sqrt(tr Var[g])`` (cf. Rainforth et al. 2018).

``active_units``, ``kl_per_dimension`` and ``class_mean_accuracy`` look at the
latent space of a trained VAE.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch.distributions import Distribution, Independent, kl_divergence

from .data import validate_labels
from .errors import PyroVAEError
from .estimators import estimator as make_estimator
from .evaluate import seeded
from .kl import describe
from .summaries import posterior_point

#: Which VAE children make up each network.
GROUPS = {"encoder": ("encoder", "posterior"), "decoder": ("decoder", "likelihood", "prior")}


def _group_params(vae) -> Dict[str, list]:
    return {g: [p for name in children for p in getattr(vae, name).parameters() if p.requires_grad]
            for g, children in GROUPS.items()}


def gradient_samples(vae, batch: torch.Tensor, estimator: str, repeats: int = 50, num_particles: int = 1,
                     seed: Optional[int] = 0) -> Dict[str, torch.Tensor]:
    """``{network: (repeats, n_params)}`` independent gradient estimates of the negative bound per point.

    Parameters are left unchanged and, with a ``seed``, so is the global RNG.
    """
    est = make_estimator(estimator, num_particles, max_plate_nesting=1)
    groups = {g: ps for g, ps in _group_params(vae).items() if ps}
    params = [p for ps in groups.values() for p in ps]
    batch = batch.to(params[0].device)
    rows = []
    with seeded(seed, batch.device):
        for _ in range(repeats):
            loss = est.differentiable_loss(vae.model, vae.guide, batch) / len(batch)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).flatten()
                                   for g, p in zip(grads, params)]))
    samples = torch.stack(rows)
    sizes = [sum(p.numel() for p in ps) for ps in groups.values()]
    return dict(zip(groups, samples.split(sizes, dim=1)))


def summarize(samples: torch.Tensor) -> Dict[str, float]:
    """Total variance, mean squared norm and SNR of ``(repeats, n_params)`` gradient samples."""
    mean = samples.mean(0)
    total_var = float(samples.var(0).sum())
    return {"total_variance": total_var, "mean_sq_norm": float((samples ** 2).sum(1).mean()),
            "snr": float(mean.norm()) / max(total_var, 1e-300) ** 0.5}


def gradient_variance(vae, batch: torch.Tensor, estimator: str, repeats: int = 50, num_particles: int = 1,
                      seed: Optional[int] = 0) -> Dict[str, Dict[str, float]]:
    """Per network (``encoder``, ``decoder``): total variance, mean squared norm and SNR of the gradient."""
    return {g: summarize(s) for g, s in gradient_samples(vae, batch, estimator, repeats, num_particles,
                                                          seed).items()}


def _bootstrap_total_variance(samples: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Total variance of bootstrap resamples given as multiplicity ``counts`` (B, n).

    With the Gram matrix G = g g^T of the n samples, a resample's total variance is
    (c . diag G - c^T G c / n) / (n - 1): an n x n computation instead of one over all parameters.
    """
    g = samples.double()
    gram = g @ g.T
    n = len(g)
    return (counts @ gram.diagonal() - ((counts @ gram) * counts).sum(1) / n) / (n - 1)


#: Share of bootstrap resamples that must have a defined ratio for the interval to be reported. A
#: resample that repeats a single row has no variance (0/0); with n rows that happens with chance
#: n^(1-n): half the resamples of 2 rows, 1/9 of 3, 1/64 of 4, 1/625 of 5.
MIN_DEFINED_RESAMPLES = 0.99


def _ratio(num: torch.Tensor, den: torch.Tensor) -> Optional[float]:
    return float(num / den) if float(den) > 0 and bool(torch.isfinite(num / den)) else None


def variance_ratio(a: torch.Tensor, b: torch.Tensor, boot: int = 1000,
                   seed: int = 0) -> Tuple[Optional[float], Optional[float], Optional[float]]:
    """``tr Var_a / tr Var_b`` with a 95% percentile-bootstrap interval over the repeats: ``(ratio, low, high)``.

    Samples drawn with common random numbers (``gradient_samples`` with one seed) are paired
    row by row, so equal numbers of rows are resampled jointly (Efron & Tibshirani 1993, ch. 13).
    Undefined values are None, never NaN: the ratio where ``b`` has fewer than two rows or no
    variance, the interval where fewer than :data:`MIN_DEFINED_RESAMPLES` of the resamples have a
    defined ratio (fewer than five rows, in practice); resamples without one are left out.
    """
    if min(len(a), len(b)) < 2:
        return None, None, None
    ratio = _ratio(a.double().var(0).sum(), b.double().var(0).sum())
    g = torch.Generator().manual_seed(seed)

    def counts(n: int) -> torch.Tensor:
        idx = torch.randint(n, (boot, n), generator=g)
        return torch.zeros(boot, n, dtype=torch.float64).scatter_add_(1, idx, torch.ones(boot, n, dtype=torch.float64))

    ca = counts(len(a))
    cb = ca if len(a) == len(b) else counts(len(b))
    num, den = _bootstrap_total_variance(a, ca), _bootstrap_total_variance(b, cb)
    # A repeated row's variance is 0 up to the rounding of the Gram-matrix formula, not exactly 0.
    defined = den > 1e-9 * float(b.double().var(0).sum())
    if ratio is None or float(defined.double().mean()) < MIN_DEFINED_RESAMPLES:
        return ratio, None, None
    draws = num[defined] / den[defined]
    low, high = draws.quantile(torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return ratio, low, high


def _posterior_points(vae, data: torch.Tensor, labels: Optional[torch.Tensor], batch_size: int,
                      seed: Optional[int] = 0) -> torch.Tensor:
    """Each row's posterior mean (median where the mean is undefined; see :mod:`pyrovae.summaries`)."""
    data = data.to(next(vae.parameters()).device)
    labels = vae.check_labels(labels, len(data))
    rows = [slice(i, i + batch_size) for i in range(0, len(data), batch_size)]
    with seeded(seed, data.device):  # a sampled median (a flow) is reproducible and leaves the stream alone
        return torch.cat([posterior_point(vae.encode_top(data[r], None if labels is None else labels[r].to(data.device)))
                          for r in rows])


@torch.no_grad()
def active_units(vae, data: torch.Tensor, threshold: float = 0.01, batch_size: int = 1000,
                 labels: Optional[torch.Tensor] = None, seed: Optional[int] = 0) -> Tuple[int, torch.Tensor]:
    """Latent dimensions u with ``Cov_x(E_q[z_u | x]) > threshold`` (Burda et al. 2015, section 5.2).

    Returns the count and the per-dimension variance of the posterior means over ``data``
    (``labels``: the rows' classes, for a CVAE whose encoder reads them). Where a family has no
    mean (Cauchy, a flow) its median stands in, as in every figure (:mod:`pyrovae.summaries`);
    a sampled median draws on its own stream seeded by ``seed``.
    """
    activity = _posterior_points(vae, data, labels, batch_size, seed).var(0)
    return int((activity > threshold).sum()), activity


@torch.no_grad()
def class_mean_accuracy(vae, data: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Accuracy of assigning each row's posterior mean to the nearest class mean ``mu^y``.

    For ``conditional="prior"`` (eq. 8 of Su Jianlin, "Variational autoencoders (1)", 2018):
    the KL ``1/2 |mu - mu^y|^2 + ...`` pulls the codes of class y towards ``mu^y`` while the
    encoder never sees y, so the nearest class mean is a classifier learned without a
    classification loss. Chance is ``1 / num_classes``.
    """
    means = getattr(vae.prior, "means", None)
    if means is None:
        raise PyroVAEError("nearest-class-mean accuracy needs a VAE with conditional='prior' (class means mu^y)")
    labels = validate_labels(labels, len(data), vae.num_classes).to(means.device)
    codes = _posterior_points(vae, data, labels, batch_size)
    nearest = torch.cdist(codes, means).argmin(1)
    return float((nearest == labels).double().mean())


def _coordinates(d: Distribution) -> Distribution:
    """The per-coordinate distribution of ``d`` when it factorizes over the latent dimensions."""
    if isinstance(d, Independent) and d.reinterpreted_batch_ndims == 1 and d.base_dist.event_shape == ():
        return d.base_dist
    raise PyroVAEError(f"the KL per latent dimension needs a posterior and a prior that factorize over "
                       f"the dimensions; {describe(d)} does not")


@torch.no_grad()
def kl_per_dimension(vae, data: torch.Tensor, labels: Optional[torch.Tensor] = None, num_samples: int = 64,
                     batch_size: int = 1000) -> torch.Tensor:
    """``KL(q(z_u|x) || p(z_u))`` for each latent dimension u, averaged over the rows of ``data``.

    For a factorized posterior and prior the KL is the sum of these terms, so they show which
    units carry information (Kingma & Welling 2013, appendix B, one term of the sum per
    dimension). Closed form where torch registers one, else a Monte-Carlo mean over
    ``num_samples`` draws from q.
    """
    data = data.to(next(vae.parameters()).device)
    labels = vae.check_labels(labels, len(data))
    total = torch.zeros(vae.z_top, dtype=data.dtype, device=data.device)
    for i in range(0, len(data), batch_size):
        y = None if labels is None else labels[i:i + batch_size].to(data.device)
        # The top layer (z_L against p(z_L)) where there are several; see VAE.encode_top.
        q, p = _coordinates(vae.encode_top(data[i:i + batch_size], y)), _coordinates(vae.prior(y))
        try:
            kl = kl_divergence(q, p)
        except NotImplementedError:
            z = q.sample((num_samples,))
            kl = (q.log_prob(z) - p.log_prob(z)).mean(0)
        total += kl.sum(0)
    return total / len(data)

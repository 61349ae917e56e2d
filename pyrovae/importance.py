"""How far to trust an importance-sampled log p(x): effective sample size and Pareto k-hat.

pyrovae estimates log p(x) for each data point from K log importance weights
``log w_k = log p(x, z_k) - log q(z_k | x)``, z_k ~ q(z | x), as
``logsumexp_k(log w_k) - log K`` (Burda, Grosse & Salakhutdinov 2016, the IWAE bound L_K). The estimate is
only as good as the weights: when a few weights dominate, it is noisy and (in log space) biased
far below the truth, even with K in the thousands. Two per-point diagnostics tell when:

* :func:`effective_sample_size` -- Kish's ESS of the normalized weights;
* :func:`pareto_khat` -- the shape k-hat of a generalized Pareto distribution fitted to the
  largest weights (Vehtari, Simpson, Gelman, Yao & Gabry, "Pareto Smoothed Importance
  Sampling", JMLR 25, 2024; arXiv:1507.02646). k-hat > 0.7 means the weights' tail is too heavy
  for the estimate to be reliable at any practical K (their section 3.2).

All functions take log weights of shape ``(K, N)`` -- K samples for each of N data points --
and reduce over dim 0; a 1-D ``(K,)`` tensor is one data point. They compute in float64 and
return float64 tensors. :class:`ImportanceDiagnostics` summarizes them over a data set.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np
import torch

__all__ = [
    "KHAT_THRESHOLD",
    "ImportanceDiagnostics",
    "effective_sample_size",
    "log_mean_exp",
    "pareto_khat",
    "standard_error",
    "summarize",
    "tail_length",
]

KHAT_THRESHOLD = 0.7
"""k-hat above which importance sampling is unreliable (Vehtari et al. 2024, section 3.2)."""
MIN_TAIL = 5
"""Fewest tail weights a generalized Pareto fit is attempted on (as R ``loo`` and ArviZ)."""
MAX_HIGH_KHAT_FRACTION = 0.05
""":meth:`ImportanceDiagnostics.warning` fires above this fraction of points with high k-hat."""
MIN_MEDIAN_ESS = 10.0
""":meth:`ImportanceDiagnostics.warning` fires below this median effective sample size."""

# Zhang & Stephens (2009) estimator constants, as in R loo's ``gpdfit`` and ArviZ's ``_gpdfit``.
_MIN_GRID_POINTS = 30  # grid size m = 30 + floor(sqrt(n))
_PRIOR_BS = 3  # scale of the prior on b, relative to the first quartile of the sample
_FLAT_TAIL = 1e-9  # tail log weights within this of the largest: equal weights up to rounding
_PRIOR_K = 10  # weakly informative prior on k: n k-hat shrunk towards 0.5 with weight 10


def _columns(log_w: torch.Tensor) -> torch.Tensor:
    """``log_w`` as a float64 ``(K, N)`` tensor (a ``(K,)`` vector becomes one column)."""
    log_w = torch.as_tensor(log_w).to(torch.float64)
    if log_w.dim() not in (1, 2) or log_w.shape[0] == 0:
        raise ValueError(f"expected log weights of shape (K,) or (K, N) with K >= 1, got {tuple(log_w.shape)}")
    return log_w if log_w.dim() == 2 else log_w.unsqueeze(1)


def _like_input(result: torch.Tensor, log_w: torch.Tensor) -> torch.Tensor:
    """Drop the column dimension again when the input was a single ``(K,)`` vector."""
    return result.squeeze(0) if torch.as_tensor(log_w).dim() == 1 else result  # (1,) -> ()


def log_mean_exp(log_w: torch.Tensor) -> torch.Tensor:
    """The importance-sampled log p(x) per point: ``logsumexp_k log w_k - log K``, shape ``(N,)``.

    The IWAE bound L_K of Burda et al. (2016): a stochastic lower bound on log p(x), in expectation,
    that tightens as K grows.
    """
    cols = _columns(log_w)
    return _like_input(torch.logsumexp(cols, dim=0) - math.log(cols.shape[0]), log_w)


def effective_sample_size(log_w: torch.Tensor) -> torch.Tensor:
    """Kish's effective sample size ``(sum_k w_k)^2 / sum_k w_k^2`` per point, shape ``(N,)``.

    Computed stably from the normalized weights ``p = softmax(log w)`` as ``1 / sum_k p_k^2``
    (Kish 1965; Owen, "Monte Carlo theory, methods and examples", 2013, ch. 9): K for equal
    weights, 1 when one weight dominates. Equivalently ``exp(2 logsumexp(log w) -
    logsumexp(2 log w))``, which can be accumulated over chunks of samples. NaN where every
    weight of a point is zero (all ``-inf``) or a log weight is NaN or ``+inf``.
    """
    p = torch.softmax(_columns(log_w), dim=0)
    return _like_input(1.0 / (p * p).sum(dim=0), log_w)


def tail_length(num_samples: int) -> int:
    """Number M of largest weights the Pareto fit uses: ``ceil(min(0.2 K, 3 sqrt(K)))``.

    Vehtari et al. (2024), appendix H (R loo's ``n_pareto``), with relative efficiency r_eff = 1
    (independent draws from q, as in importance sampling from an encoder).
    """
    return math.ceil(min(0.2 * num_samples, 3.0 * math.sqrt(num_samples)))


def _gpd_khat(x: torch.Tensor) -> torch.Tensor:
    """Zhang & Stephens (2009) empirical-Bayes shape estimate, with the weakly informative prior.

    ``x``: ``(n, N)`` positive exceedances, sorted ascending along dim 0. Returns k-hat ``(N,)``
    in the usual sign convention (k > 0: heavy tail; the negative of Zhang & Stephens' k). A
    vectorized transcription of R loo's ``gpdfit`` / ArviZ's ``_gpdfit``; NaN where the fit
    breaks down numerically (e.g. the first quartile of ``x`` underflowed to zero).
    """
    n = x.shape[0]
    m = _MIN_GRID_POINTS + math.isqrt(n)
    j = torch.arange(1, m + 1, dtype=x.dtype, device=x.device)
    # Grid of b = -k / sigma (Zhang & Stephens 2009, section 4): prior quantiles scaled by the
    # first quartile, shifted by 1 / max(x) so that 1 - b x > 0 for every grid point.
    first_quartile = x[int(n / 4 + 0.5) - 1]
    b = (1 - torch.sqrt(m / (j - 0.5))).unsqueeze(1) / (_PRIOR_BS * first_quartile) + 1 / x[-1]
    # Profile log-likelihood of b: k(b) = mean log(1 - b x), l(b) = n (log(-b / k) - k - 1).
    # One grid point at a time keeps memory at O(n N) rather than O(m n N).
    k = torch.stack([torch.log1p(-b_j * x).mean(dim=0) for b_j in b])
    profile = n * (torch.log(-b / k) - k - 1)
    # Posterior mean of b under a flat prior on the grid, then k at that b.
    b_post = (torch.softmax(profile, dim=0) * b).sum(dim=0)
    k_post = torch.log1p(-b_post * x).mean(dim=0)
    # Weakly informative prior: shrink towards 0.5 as if 10 more points had k = 0.5 (loo's
    # ``adjust_k_wip``; stabilizes k-hat for short tails).
    return (n * k_post + _PRIOR_K * 0.5) / (n + _PRIOR_K)


def pareto_khat(log_w: torch.Tensor, num_samples: Optional[int] = None) -> torch.Tensor:
    """Pareto k-hat diagnostic of the importance weights of each point, shape ``(N,)``.

    Vehtari et al. (2024), section 3: take the M = :func:`tail_length` (K) largest
    weights, their exceedances over the (M+1)-th largest (after shifting the log weights by
    their max), and fit a generalized Pareto distribution with :func:`_gpd_khat`. k-hat < 0.5:
    finite variance, the estimate converges fast; 0.5-0.7: slower but usable;
    > 0.7: unreliable; > 1: the weights' mean does not even exist.

    ``log_w`` may hold only the largest log weights of each point (at least
    ``tail_length(num_samples) + 1`` of them, e.g. a running top-k over chunks of samples);
    ``num_samples`` is then the total K (default: ``log_w.shape[0]``).

    Returns NaN where no tail can be fitted: K so small that M < 5 (``loo`` and ArviZ return
    Inf there), a flat tail (the M largest weights equal, e.g. q exactly the posterior), or
    non-finite largest log weight. Equal means equal to rounding: within 1e-9 in log space. Returns +Inf where the fit breaks down numerically: the tail
    spans more than float64's range (a tail heavier than any k-hat threshold), or over a quarter
    of the tail ties with the cutoff.
    """
    cols = _columns(log_w)
    num_samples = cols.shape[0] if num_samples is None else num_samples
    tail = tail_length(num_samples)
    if tail < MIN_TAIL or cols.shape[0] < tail + 1:
        if tail >= MIN_TAIL:  # enough samples in principle, but too few log weights passed
            raise ValueError(f"need the {tail + 1} largest of {num_samples} log weights, got {cols.shape[0]}")
        return _like_input(torch.full((cols.shape[1],), math.nan, dtype=cols.dtype, device=cols.device), log_w)
    top = torch.topk(cols, tail + 1, dim=0).values.flip(0)  # ascending; top[0] is the cutoff
    top = top - top[-1]  # largest log weight 0, for a safe exp
    exceedances = torch.exp(top[1:]) - torch.exp(top[:1])
    khat = _gpd_khat(exceedances)
    khat = torch.where(torch.isnan(khat), math.inf, khat)
    # A flat tail: the largest weights agree to rounding (q is the exact posterior); the log weights
    # then differ by ~1e-15, whose exceedances a Pareto fit would read as an arbitrary tail.
    undefined = (top[1] > -_FLAT_TAIL) | ~torch.isfinite(cols.max(dim=0).values)
    khat = torch.where(undefined, math.nan, khat)
    return _like_input(khat, log_w)


def standard_error(values: Union[torch.Tensor, Sequence[float]]) -> float:
    """Standard error of the mean of ``values``: sample std (N - 1 denominator) / sqrt(N).

    For the mean of per-point log p(x) estimates over a data set, this is the sampling error
    from the finite number N of data points (not the Monte Carlo error within each point). NaN
    for N < 2; NaN values propagate.
    """
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    if v.numel() < 2:
        return math.nan
    return float(v.std(correction=1) / math.sqrt(v.numel()))


def _finite_or_none(value: Any) -> Any:
    """JSON-safe: NaN and +-Inf floats become None (``json.dumps`` would write bare NaN)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


@dataclass(frozen=True)
class ImportanceDiagnostics:
    """How far to trust an importance-sampled mean log p(x) over a data set.

    ``frac_khat_high`` is the fraction of all points with k-hat > :data:`KHAT_THRESHOLD`
    (undefined k-hats count as not high; NaN when no point has one); ``max_khat`` ignores
    undefined k-hats (NaN when all are).
    """

    num_samples: int  # K, importance samples per point
    num_points: int  # N, data points
    log_px: float  # mean over points of the per-point log p(x) estimates
    log_px_se: float  # standard error of that mean over points
    median_ess: float  # median over points of Kish's ESS
    frac_khat_high: float  # fraction of points with k-hat > 0.7
    max_khat: float  # largest k-hat
    num_khat_undefined: int  # points whose k-hat is NaN (K too small, flat tail)

    @classmethod
    def from_log_weights(cls, log_w: torch.Tensor) -> "ImportanceDiagnostics":
        """Every diagnostic from the full ``(K, N)`` log weights."""
        cols = _columns(log_w)
        return summarize(log_mean_exp(cols), pareto_khat(cols), effective_sample_size(cols), cols.shape[0])

    def is_reliable(self) -> bool:
        """False when k-hat > 0.7 on more than 5% of the points or the median ESS is below 10."""
        return self.warning() is None

    def warning(self) -> Optional[str]:
        """One line saying why the log p(x) estimate is unreliable, or None when it looks fine.

        It fires when k-hat > 0.7 on more than 5% of the points or the median ESS is below 10
        (so always for K < 10: a handful of samples cannot show the weights are well behaved).
        """
        high = self.frac_khat_high > MAX_HIGH_KHAT_FRACTION  # False for NaN
        low_ess = self.median_ess < MIN_MEDIAN_ESS or math.isnan(self.median_ess)
        if not (high or low_ess):
            return None
        if math.isnan(self.frac_khat_high):
            khat = f"k-hat undefined (K = {self.num_samples} too small or flat tails)"
        else:
            pct = 100 * self.frac_khat_high
            khat = f"k-hat > {KHAT_THRESHOLD} for {pct:.{0 if pct >= 10 else 1}f}% of the points"
        return (f"importance sampling is unreliable: {khat} (median ESS {self.median_ess:.1f} of "
                f"{self.num_samples}); the log p(x) estimate may be far below the truth")

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-safe dict for ``summary.json`` (non-finite numbers as None), with ``warning``."""
        out = {key: _finite_or_none(value) for key, value in asdict(self).items()}
        out["warning"] = self.warning()
        return out


def summarize(log_px: torch.Tensor, khat: torch.Tensor, ess: torch.Tensor,
              num_samples: int) -> ImportanceDiagnostics:
    """Summarize per-point estimates (each shape ``(N,)``, e.g. concatenated over batches).

    ``log_px`` from :func:`log_mean_exp`, ``khat`` from :func:`pareto_khat`, ``ess`` from
    :func:`effective_sample_size`, all from ``num_samples`` importance samples per point.
    """
    tensors = (torch.as_tensor(t).detach().to("cpu", torch.float64).flatten() for t in (log_px, khat, ess))
    log_px, khat, ess = tensors
    if not log_px.numel() == khat.numel() == ess.numel():
        raise ValueError(f"need one value per point, got {log_px.numel()}, {khat.numel()}, {ess.numel()}")
    defined = ~torch.isnan(khat)
    n_defined = int(defined.sum())
    ess = ess[~torch.isnan(ess)]  # NaN only for degenerate log weights (all -inf, NaN)
    return ImportanceDiagnostics(
        num_samples=int(num_samples),
        num_points=int(log_px.numel()),
        log_px=float(log_px.mean()) if log_px.numel() else math.nan,
        log_px_se=standard_error(log_px),
        median_ess=float(np.median(ess.numpy())) if ess.numel() else math.nan,  # mean of middle two
        frac_khat_high=float((khat > KHAT_THRESHOLD).double().mean()) if n_defined else math.nan,
        max_khat=float(khat[defined].max()) if n_defined else math.nan,
        num_khat_undefined=int(khat.numel() - n_defined),
    )

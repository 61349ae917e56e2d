"""Evaluation in nats per data point: ELBO, its two terms, and an importance-sampled log p(x).

All functions take an optional ``seed``. With one, they run on a forked RNG
stream, so evaluating never perturbs the training stream (a resumed run stays
bit-identical) and repeated evaluations give identical numbers.

They report the true bound whatever KL weight (beta, warm-up) the VAE was
trained with: each runs with ``vae.kl_weight = 1``. A conditional VAE takes
the ``labels`` of the rows (ignored by an unconditional one).
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Dict, Iterator, Optional, Tuple

import pyro
import pyro.poutine as poutine
from pyro.poutine.util import site_is_subsample
import torch
from torch.distributions import kl_divergence
from tqdm.auto import tqdm

from . import distributed
from .estimators import estimator as make_estimator
from .errors import PyroVAEError
from .importance import ImportanceDiagnostics, pareto_khat, summarize, tail_length
from .estimators.weights import PARTICLE_PLATE, log_weights_of
from .kl import has_closed_form_kl, latent_sites
from .validation import check_positive, validate_data

#: Rows of decoder output alive at once in :func:`log_likelihood` (each ``x_dim`` floats). Small
#: chunks that stay in cache measured 2-3x faster on a 2-core CPU than 200k-row chunks.
DEFAULT_ROW_BUDGET = 4096


@contextlib.contextmanager
def seeded(seed: Optional[int], device: torch.device | str = "cpu") -> Iterator[None]:
    """Run the block on its own RNG stream seeded by ``seed`` (no-op when ``seed`` is None)."""
    if seed is None:
        yield
        return
    device = torch.device(device)
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)  # Pyro samples from torch's stream only
        yield


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _device(vae) -> torch.device:
    return next(vae.parameters()).device


@contextlib.contextmanager
def _true_bound(vae, data: torch.Tensor, labels) -> Iterator[Optional[torch.Tensor]]:
    """Within the block, ``vae`` weights its KL by 1; yields the checked labels on ``data``'s device."""
    weighted = getattr(vae, "kl_weighted", None)
    check = getattr(vae, "check_labels", None)
    y = None if check is None else check(labels, len(data))
    with weighted(1.0) if weighted is not None else contextlib.nullcontext():
        yield None if y is None else y.to(data.device)


def _at(labels: Optional[torch.Tensor], rows: slice) -> Dict[str, torch.Tensor]:
    """Keyword arguments passing the labels of ``rows`` to model and guide (none without labels)."""
    return {} if labels is None else {"y": labels[rows]}


def _here(vae, data: torch.Tensor, y: Optional[torch.Tensor], batch_size: int, ranks: Optional[distributed.Ranks]
          ) -> Iterator[Tuple[torch.Tensor, Dict[str, torch.Tensor], contextlib.AbstractContextManager]]:
    """The chunks of ``batch_size`` rows this process evaluates: ``(rows, labels, noise context)``.

    In one process, every chunk. Under torchrun each rank takes its shard of every chunk
    and draws the chunk's noise as one process would (:class:`~pyrovae.distributed.SharedNoise`),
    so the summed result is the single-process one; a chunk with fewer rows than ranks goes
    to rank 0 alone, whose random stream is the single process's.
    """
    for rows in _chunks(len(data), batch_size):
        x, labels = data[rows], _at(y, rows)
        if ranks is None:
            yield x, labels, contextlib.nullcontext()
        elif len(x) >= ranks.world_size:
            mine = ranks.rows(len(x))
            yield x[mine], {k: v[mine] for k, v in labels.items()}, \
                distributed.SharedNoise(ranks, len(x), getattr(vae, "data_plate", "data"), rescale=False)
        elif ranks.main:
            yield x, labels, contextlib.nullcontext()


def _over_ranks(value: float, ranks: Optional[distributed.Ranks]) -> float:
    """Sum a per-rank part of an evaluation over ranks (itself in one process)."""
    return value if ranks is None else ranks.sum(value, "the evaluation")


def _checked(vae, data) -> torch.Tensor:
    """``data`` validated against ``vae`` (shape, NaN/inf, the likelihood's support), on its device."""
    data = validate_data(data, x_dim=getattr(vae, "x_dim", None), likelihood=getattr(vae, "likelihood_spec", None),
                         name="data", keep_float=True)
    return data.to(_device(vae))


@torch.no_grad()
def evaluate_elbo(vae, data: torch.Tensor, estimator: str = "mc", num_particles: int = 1,
                  batch_size: int = 1000, seed: Optional[int] = None, labels=None,
                  ranks: Optional[distributed.Ranks] = None) -> float:
    """The ELBO of ``data`` under ``vae`` by the named estimator, in nats per data point.

    ``mc`` and ``analytic`` estimate the same bound (Kingma & Welling 2013,
    eqs. 6-7); with ``num_particles`` L the estimate averages L samples. With ``ranks`` (a
    data-parallel run, :func:`pyrovae.distributed.init_from_env`) each rank evaluates its shard
    and every rank gets the single-process value; without it the process evaluates everything.
    """
    est = make_estimator(estimator, num_particles, max_plate_nesting=1)
    check_positive(batch_size=batch_size)
    data = _checked(vae, data)
    total = 0.0
    with seeded(seed, data.device), _true_bound(vae, data, labels) as y:
        for x, given, noise in _here(vae, data, y, batch_size, ranks):
            with noise:
                total -= est.loss(vae.model, vae.guide, x, **given)
    return _over_ranks(total, ranks) / len(data)


def _traces(model: Callable, guide: Callable, *args, **kwargs):
    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    return model_trace, guide_trace


def _site_kl(p_site, q_site) -> torch.Tensor:
    """KL(q||p) at one site: closed form when registered, else the one-sample log q - log p."""
    q, p, z = q_site["fn"], p_site["fn"], q_site["value"]
    if has_closed_form_kl(q, p):
        return kl_divergence(q, p).sum()
    return (q.log_prob(z) - p.log_prob(z)).sum()


def trace_terms(vae, x: torch.Tensor, subsample: Optional[torch.Tensor] = None, **data: torch.Tensor
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """One sample of the two ELBO terms on the rows ``x[subsample]``, summed over those rows.

    Returns ``(recon, {site: kl})``: ``log p(x|z)`` of the observed sites, and per latent site
    ``KL(q||p)``, closed form where registered and ``log q(z) - log p(z)`` otherwise. Not scaled
    by ``N/M``. ``data`` (e.g. labels ``y``) goes to the model and guide.
    """
    model_trace, guide_trace = _traces(vae.model, vae.guide, x, subsample=subsample, **data)
    kl = {name: _site_kl(p_site, q_site) for name, p_site, q_site in latent_sites(model_trace, guide_trace)
          if not site_is_subsample(p_site)}  # a plate's index site, not a latent variable
    recon = sum(s["fn"].log_prob(s["value"]).sum() for s in model_trace.nodes.values()
                if s["type"] == "sample" and s["is_observed"])
    return recon, kl


@torch.no_grad()
def elbo_terms(vae, data: torch.Tensor, batch_size: int = 1000, seed: Optional[int] = None, labels=None,
               ranks: Optional[distributed.Ranks] = None) -> Dict[str, float]:
    """``{"elbo", "recon", "kl"}`` in nats per data point, with ``elbo = recon - kl``.

    ``recon`` is a one-sample estimate of ``E_q[log p(x|z)]``; ``kl`` is exact
    where the (posterior, prior) pair has a closed form and sampled otherwise.
    ``ranks``: as in :func:`evaluate_elbo`.
    """
    check_positive(batch_size=batch_size)
    data = _checked(vae, data)
    recon = kl = 0.0
    with seeded(seed, data.device), _true_bound(vae, data, labels) as y:
        for x, given, noise in _here(vae, data, y, batch_size, ranks):
            with noise:
                chunk_recon, chunk_kl = trace_terms(vae, x, **given)
            recon += float(chunk_recon)
            kl += sum(float(v) for v in chunk_kl.values())
    recon, kl = _over_ranks(recon, ranks), _over_ranks(kl, ranks)
    n = len(data)
    return {"elbo": (recon - kl) / n, "recon": recon / n, "kl": kl / n}


def log_weights(model: Callable, guide: Callable, *args, num_particles: int,
                max_plate_nesting: int = 1, **kwargs) -> torch.Tensor:
    """``log p(x, z_k) - log q(z_k|x)`` for ``z_k ~ q``, shape ``(num_particles, *plates)``.

    Per element of the plate the latents are local to (for a VAE, ``(K, M)``: one weight per
    particle and data point); for a model whose weights do not factorize (a global latent), the
    whole trace's weight, with size 1 on every plate dim (see :mod:`pyrovae.estimators.weights`).
    Particles are one vectorized plate left of the model's own plates. Sites outside the local
    plate whose densities do not depend on the draws have no per-element weight: they are refused.
    """
    particles = pyro.plate(PARTICLE_PLATE, num_particles, dim=-(max_plate_nesting + 1))
    model_trace, guide_trace = _traces(particles(model), particles(guide), *args, **kwargs)
    weights = log_weights_of([(model_trace, guide_trace)])
    if weights.weighting.shared:
        raise PyroVAEError(f"log_weights: site(s) {', '.join(map(repr, weights.weighting.shared))} lie outside "
                           f"plate {', '.join(map(repr, weights.weighting.plates))}, so they have no per-element "
                           "weight; use pyrovae.estimator('iwae', K).loss for the whole bound")
    # Per local unit and without the subsample factor N/M, which scales a bound, not a weight.
    return weights.values


def _importance_sample(vae, x: torch.Tensor, given, noise, num_samples: int, per_chunk: int, keep: int):
    """Per row of ``x``: ``logsumexp_k log w_k``, ``logsumexp_k 2 log w_k`` and the ``keep`` largest log weights.

    The K samples come in chunks of ``per_chunk``; the running top-``keep`` is all the Pareto fit
    needs (:func:`pyrovae.importance.pareto_khat`), so memory stays bounded whatever K is.
    """
    acc = torch.full((len(x),), -math.inf, dtype=x.dtype, device=x.device)
    acc2, top = acc.clone(), None
    for k in _chunks(num_samples, per_chunk):
        with noise:
            lw = log_weights(vae.model, vae.guide, x, **given, num_particles=k.stop - k.start)
        acc = torch.logaddexp(acc, lw.logsumexp(0))
        if keep:
            acc2 = torch.logaddexp(acc2, (2 * lw).logsumexp(0))
            top = lw if top is None else torch.cat([top, lw])
            top = top.topk(min(keep, len(top)), dim=0).values
    return acc, acc2, top


def _shard_sizes(n: int, batch_size: int, ranks: distributed.Ranks) -> list:
    """Rows each rank evaluated, chunk by chunk as :func:`_here` deals them."""
    sizes = [0] * ranks.world_size
    for rows in _chunks(n, batch_size):
        share = ranks.sizes(rows.stop - rows.start) if rows.stop - rows.start >= ranks.world_size else \
            [rows.stop - rows.start] + [0] * (ranks.world_size - 1)
        sizes = [a + b for a, b in zip(sizes, share)]
    return sizes


def _diagnostics(points, num_samples: int, n: int, batch_size: int, ranks) -> ImportanceDiagnostics:
    """Summarize the per-point ``(log p(x), ESS, k-hat)`` of every rank."""
    log_px, ess, khat = (torch.cat([p[i] for p in points]) if points else torch.zeros(0) for i in range(3))
    if ranks is not None:
        sizes = _shard_sizes(n, batch_size, ranks)
        log_px, ess, khat = (ranks.gather(t.double(), 0, sizes, "the log p(x) diagnostics") for t in (log_px, ess, khat))
    return summarize(log_px, khat, ess, num_samples)


@torch.no_grad()
def log_likelihood(vae, data: torch.Tensor, num_samples: int = 5000, batch_size: int = 100,
                   seed: Optional[int] = None, row_budget: int = DEFAULT_ROW_BUDGET,
                   progress: bool = False, labels=None, ranks: Optional[distributed.Ranks] = None,
                   return_diagnostics: bool = False):
    """Importance-sampled ``log p(x)`` in nats per data point (Burda et al. 2015, eq. 8 with q as proposal).

        log p(x) ~ logsumexp_k [log p(x, z_k) - log q(z_k|x)] - log K,   z_k ~ q(z|x)

    A lower bound in expectation that tightens as ``num_samples`` K grows. The
    K samples are drawn in chunks so at most ``max(row_budget, batch_size)``
    decoder rows are alive at once, whatever K is. ``ranks``: as in :func:`evaluate_elbo`.

    With ``return_diagnostics`` it returns ``(value, ImportanceDiagnostics)``: the standard
    error over points, the median effective sample size and the Pareto k-hat of each point's
    weights (Vehtari et al. 2024), with a one-line warning when the estimate is unreliable.
    """
    check_positive(num_samples=num_samples, batch_size=batch_size)
    data = _checked(vae, data)
    per_chunk = max(1, min(num_samples, row_budget // max(1, min(batch_size, len(data)))))
    keep = tail_length(num_samples) + 1 if return_diagnostics else 0
    total, points = 0.0, []
    with seeded(seed, data.device), _true_bound(vae, data, labels) as y:
        for x, given, noise in tqdm(list(_here(vae, data, y, batch_size, ranks)), desc=f"log p(x), K={num_samples}",
                                    unit="batch", disable=not progress, dynamic_ncols=True):
            acc, acc2, top = _importance_sample(vae, x, given, noise, num_samples, per_chunk, keep)
            total += float((acc - math.log(num_samples)).sum())
            if keep:  # Kish's ESS (sum w)^2 / sum w^2, from the two running log-sums
                points.append((acc - math.log(num_samples), (2 * acc - acc2).exp(), pareto_khat(top, num_samples)))
    value = _over_ranks(total, ranks) / len(data)
    if not return_diagnostics:
        return value
    return value, _diagnostics(points, num_samples, len(data), batch_size, ranks)

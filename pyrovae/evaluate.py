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
import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, Optional, Tuple

import pyro
import pyro.poutine as poutine
from pyro.poutine.util import site_is_subsample
import torch
from torch.distributions import kl_divergence
from tqdm.auto import tqdm

from . import distributed
from .ais import Annealing, annealed_log_weights
from .estimators import estimator as make_estimator
from .errors import PyroVAEError
from .importance import (ImportanceDiagnostics, effective_sample_size, log_mean_exp, pareto_khat, summarize,
                         tail_length)
from .estimators.weights import PARTICLE_PLATE, log_weights_of
from .coupling import coupled_sites
from .kl import has_closed_form_kl, latent_sites
from .registry import Registry
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


def _site_kl(p_site, q_site, coupled: bool = False) -> torch.Tensor:
    """KL(q||p) at one site: closed form when registered and valid, else the one-sample log q - log p.

    ``coupled``: p reads guide samples drawn from this site (:func:`pyrovae.coupling.coupled_sites`).
    """
    q, p, z = q_site["fn"], p_site["fn"], q_site["value"]
    if not coupled and has_closed_form_kl(q, p):
        return kl_divergence(q, p).sum()
    return (q.log_prob(z) - p.log_prob(z)).sum()


def trace_terms(vae, x: torch.Tensor, subsample: Optional[torch.Tensor] = None, **data: torch.Tensor
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """One sample of the two ELBO terms on the rows ``x[subsample]``, summed over those rows.

    Returns ``(recon, {site: kl})``: ``log p(x|z)`` of the observed sites, and per latent site
    ``KL(q||p)``, closed form where registered and valid and ``log q(z) - log p(z)`` otherwise. Not scaled
    by ``N/M``. ``data`` (e.g. labels ``y``) goes to the model and guide.
    """
    model_trace, guide_trace = _traces(vae.model, vae.guide, x, subsample=subsample, **data)
    coupled = coupled_sites(vae.model, vae.guide, guide_trace, x, subsample=subsample, **data)
    kl = {name: _site_kl(p_site, q_site, name in coupled)
          for name, p_site, q_site in latent_sites(model_trace, guide_trace)
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


@torch.no_grad()
def log_weights(model: Callable, guide: Callable, *args, num_particles: int,
                max_plate_nesting: int = 1, **kwargs) -> torch.Tensor:
    """``log p(x, z_k) - log q(z_k|x)`` for ``z_k ~ q``, shape ``(num_particles, *plates)``, detached
    (a measurement: to train on importance weights, use ``pyrovae.estimator("iwae", K)``).

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


PerPoint = Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]
"""``(log_px, ess, khat)`` of each row of a batch, each ``(N,)``; ``ess`` and ``khat`` None without diagnostics."""


@dataclass(frozen=True)
class SamplingPlan:
    """What :func:`log_likelihood` draws for each batch of rows.

    :param num_samples: importance samples K (``is``) or annealing chains (``ais``) per point.
    :param per_chunk: importance samples drawn at once (``is``), so memory stays bounded whatever K is.
    :param diagnostics: whether each point's effective sample size and Pareto k-hat are wanted too.
    :param annealing: the settings of annealed importance sampling (``ais``).
    """

    num_samples: int
    per_chunk: int
    diagnostics: bool
    annealing: Annealing


def _importance_estimate(vae, x: torch.Tensor, given, noise, plan: SamplingPlan, tick: Callable[[], None]) -> PerPoint:
    """Per row: the importance-sampled log p(x) and, with diagnostics, its ESS and Pareto k-hat."""
    keep = tail_length(plan.num_samples) + 1 if plan.diagnostics else 0
    acc, acc2, top = _importance_sample(vae, x, given, noise, plan.num_samples, plan.per_chunk, keep)
    tick()
    log_px = acc - math.log(plan.num_samples)
    if not keep:
        return log_px, None, None
    # Kish's ESS (sum w)^2 / sum w^2, from the two running log-sums
    return log_px, (2 * acc - acc2).exp(), pareto_khat(top, plan.num_samples)


def _annealed_estimate(vae, x: torch.Tensor, given, noise, plan: SamplingPlan, tick: Callable[[], None]) -> PerPoint:
    """Per row: the AIS log p(x), ``log mean_c w_c`` over the chains (Neal 2001), with their ESS and k-hat."""
    with noise:
        log_w = annealed_log_weights(vae, x, plan.num_samples, plan.annealing, given=given, tick=tick).log_weights
    return log_mean_exp(log_w), effective_sample_size(log_w), pareto_khat(log_w)


@dataclass(frozen=True)
class LikelihoodMethod:
    """An estimator of log p(x) per data point, as :data:`LOG_LIKELIHOOD_METHODS` holds them.

    :param estimate: ``estimate(vae, x, given, noise, plan, tick) -> (log_px, ess, khat)`` for one
        batch of rows (see :data:`PerPoint`); it calls ``tick()`` once per unit of progress.
    :param default_samples: samples (or chains) per point when the caller gives none.
    :param units: ``units(plan)``, the units of progress one batch takes.
    :param summary_key: the key of ``summary.json`` that ``pyrovae evaluate`` writes the estimate to.
    :param label: ``label(plan)``, how the estimate is named on the screen (``K=5000``).
    :param settings: ``settings(plan)``, what ``summary.json`` records of the plan besides ``num_samples``.
    :param description: one line for the documentation.
    """

    estimate: Callable[..., PerPoint]
    default_samples: int
    units: Callable[[SamplingPlan], int]
    summary_key: str
    label: Callable[[SamplingPlan], str]
    settings: Callable[[SamplingPlan], Dict[str, object]]
    description: str


LOG_LIKELIHOOD_METHODS: Registry[LikelihoodMethod] = Registry("log-likelihood method")
"""Method name -> :class:`LikelihoodMethod`: ``is`` (importance sampling from q) and ``ais`` (annealing)."""
LOG_LIKELIHOOD_METHODS.register("is", LikelihoodMethod(
    _importance_estimate, 5000, lambda plan: 1, "log_likelihood", lambda plan: f"K={plan.num_samples}",
    lambda plan: {}, "importance sampling from the encoder's q(z|x) (Burda et al. 2016)"))
LOG_LIKELIHOOD_METHODS.register("ais", LikelihoodMethod(
    _annealed_estimate, 16, lambda plan: plan.annealing.steps, "log_likelihood_ais",
    lambda plan: f"AIS, {plan.num_samples} chains x {plan.annealing.steps} steps",
    lambda plan: {"annealing": dataclasses.asdict(plan.annealing)},
    "annealed importance sampling with HMC transitions (Neal 2001; Wu et al. 2017)"))


def sampling_plan(method: str, num_samples: Optional[int] = None, *, batch_size: int = 100, rows: int = 1,
                  row_budget: int = DEFAULT_ROW_BUDGET, diagnostics: bool = False, ais_steps: Optional[int] = None,
                  annealing: Optional[Annealing] = None) -> Tuple[LikelihoodMethod, SamplingPlan]:
    """The registered ``method`` and what it draws, checked: bad names and sizes raise :class:`PyroVAEError`.

    ``num_samples`` defaults to the method's own; ``ais_steps``, when given, replaces the
    ``steps`` of ``annealing`` (default :class:`~pyrovae.ais.Annealing`); ``rows`` is the number
    of data points (it sizes the chunks of importance samples).
    """
    spec = LOG_LIKELIHOOD_METHODS.get(method)
    num_samples = spec.default_samples if num_samples is None else num_samples
    check_positive(num_samples=num_samples, batch_size=batch_size, row_budget=row_budget)
    annealing = dataclasses.replace(annealing or Annealing(), **({} if ais_steps is None else {"steps": ais_steps}))
    per_chunk = max(1, min(num_samples, row_budget // max(1, min(batch_size, rows))))
    return spec, SamplingPlan(num_samples, per_chunk, diagnostics, annealing.check())


@torch.no_grad()
def log_likelihood(vae, data: torch.Tensor, num_samples: Optional[int] = None, batch_size: int = 100,
                   seed: Optional[int] = None, row_budget: int = DEFAULT_ROW_BUDGET,
                   progress: bool = False, labels=None, ranks: Optional[distributed.Ranks] = None,
                   return_diagnostics: bool = False, method: str = "is", ais_steps: Optional[int] = None,
                   annealing: Optional[Annealing] = None):
    """An estimate of ``log p(x)`` in nats per data point, by the named ``method``.

    ``is`` (the default; K = ``num_samples``, default 5000) is importance sampling with the
    encoder as proposal (Burda et al. 2016, eq. 8):

        log p(x) ~ logsumexp_k [log p(x, z_k) - log q(z_k|x)] - log K,   z_k ~ q(z|x)

    a lower bound in expectation that tightens as K grows. The K samples are drawn in chunks so
    at most ``max(row_budget, batch_size)`` decoder rows are alive at once, whatever K is.

    ``ais`` is annealed importance sampling (Neal 2001; :mod:`pyrovae.ais`): ``num_samples``
    chains per point (default 16) anneal from q(z|x) to the posterior over ``ais_steps``
    intermediate distributions (default 1000) with HMC transitions, all chains and the rows of a
    batch at once; ``annealing`` sets the rest. Also a stochastic lower bound, but one that
    approaches ``log p(x)`` as the steps grow even where q is a poor proposal. Its cost is about
    ``ais_steps * leapfrog_steps`` gradient evaluations of ``log p(x, z)`` per chain.

    With ``return_diagnostics`` it returns ``(value, ImportanceDiagnostics)``: the standard
    error over points, the median effective sample size and the Pareto k-hat of each point's
    weights (the importance weights, or the chains' AIS weights; Vehtari et al. 2024), with a
    one-line warning when the estimate is unreliable. ``ranks``: as in :func:`evaluate_elbo`.
    """
    data = _checked(vae, data)
    spec, plan = sampling_plan(method, num_samples, batch_size=batch_size, rows=len(data), row_budget=row_budget,
                               diagnostics=return_diagnostics, ais_steps=ais_steps, annealing=annealing)
    total, points = 0.0, []
    with seeded(seed, data.device), _true_bound(vae, data, labels) as y:
        batches = list(_here(vae, data, y, batch_size, ranks))
        with tqdm(total=len(batches) * spec.units(plan), desc=f"log p(x) by {method}, K={plan.num_samples}",
                  disable=not progress, dynamic_ncols=True) as bar:
            for x, given, noise in batches:
                log_px, ess, khat = spec.estimate(vae, x, given, noise, plan, lambda: bar.update(1))
                total += float(log_px.sum())
                if return_diagnostics:
                    points.append((log_px, ess, khat))
    value = _over_ranks(total, ranks) / len(data)
    if not return_diagnostics:
        return value
    return value, _diagnostics(points, plan.num_samples, len(data), batch_size, ranks)

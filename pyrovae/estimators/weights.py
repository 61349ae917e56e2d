"""Importance log weights of (model, guide) traces, decomposed by plate.

The IWAE bound (Burda, Grosse & Salakhutdinov 2015, eq. 8) of a trace is
``log 1/K sum_k w_k`` with ``w_k = p(x, z_k) / q(z_k | x)``: one log-mean-exp of
the *whole* trace's weight. This is what Pyro's ``RenyiELBO(alpha=0)``
computes, and it is valid for every model.

When the latents are local to a plate (one ``z_i`` per data point, the plate
asserting conditional independence) the weight factorizes, ``w_k = prod_i w_ik``,
and K draws per element give the tighter bound ``sum_i log 1/K sum_k w_ik``,
one log-mean-exp per element (eq. 8 applied to i.i.d. data). That holds only
when every term that depends on the draws lives in that plate. So here:

- a site is *in* a plate by the plate's identity (its name and dim), never by
  dim alone: two plates at the same dim that are not nested are different;
- the *local plates* are those shared by every latent site (model and guide)
  and by every observed site or factor whose density varies across the K
  particles; a term outside them that does not vary (an observation of
  parameters alone, a penalty on weights) is counted once, outside the
  log-mean-exp;
- when no plate is shared (a global latent, an observation that couples the
  elements) the weights are *joint*, over the whole trace, as in ``RenyiELBO``.

Scales: the scale of the local latents (``N/M`` under subsampling, or
per-datum weights from ``poutine.scale``) multiplies each element's
log-mean-exp, so a subsampled bound estimates the full data set's
``sum_i log 1/K sum_k w_ik``; any other site's scale, relative to it, stays on
its density inside the weight. Joint weights keep every scale inside, as
``RenyiELBO`` does. With K = 1 every decomposition gives the ELBO.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import FrozenSet, List, Optional, Sequence, Tuple, Union

import torch
from pyro.distributions.util import detach, scale_and_mask
from pyro.poutine.util import prune_subsample_sites

from ..errors import PyroVAEError

PARTICLE_PLATE = "num_particles_vectorized"  # the name Pyro's ELBO gives its particle plate
LOCAL, JOINT = "local", "joint"
Plate = Tuple[str, int]  # a vectorized plate's identity: (name, dim)
Scale = Union[float, torch.Tensor]


@dataclass(frozen=True)
class Weighting:
    """How an importance-weighted bound decomposed its log weights.

    :param kind: ``"local"`` (one log-mean-exp per element of ``plates``) or
        ``"joint"`` (one log-mean-exp of the whole trace's weight, as Pyro's
        ``RenyiELBO(alpha=0)``).
    :param plates: the local plates' names (empty when joint).
    :param shared: sites outside the local plates whose densities do not depend
        on the draws; each is counted once, outside the log-mean-exp.
    :param reason: why the weights are joint (empty when local).
    """

    kind: str
    plates: Tuple[str, ...] = ()
    shared: Tuple[str, ...] = ()
    reason: str = ""

    def __str__(self) -> str:
        if self.kind == JOINT:
            return f"joint weights over the whole trace ({self.reason})"
        text = "per-element weights in plate " + ", ".join(repr(p) for p in self.plates)
        return text + (f"; counted once: {', '.join(repr(s) for s in self.shared)}" if self.shared else "")


@dataclass
class LogWeights:
    """Log importance weights and how to turn them into the bound.

    ``values`` has shape ``(K, *plates)``: the log weight of each particle per
    element of the local plates (size 1 on every other plate dim; all size 1
    when joint). The bound is ``sum(scale * logmeanexp_k values) + shared``.
    """

    values: torch.Tensor
    scale: Scale
    shared: Union[float, torch.Tensor]
    weighting: Weighting

    def bound(self) -> torch.Tensor:
        """``sum scale * (log 1/K sum_k w_k) + shared``: the IWAE bound (Burda et al. 2015, eq. 8)."""
        per_element = self.values.logsumexp(0) - math.log(self.values.shape[0])
        return (self.scale * per_element).sum() + self.shared


@dataclass
class _Term:
    """One sample site's unscaled log density, stacked over particles as ``(K, *plates)``."""

    name: str
    log_prob: torch.Tensor
    scale: Scale
    mask: Optional[torch.Tensor]
    plates: FrozenSet[Plate]
    latent: bool
    guide: bool

    def scaled(self, ratio: Scale) -> torch.Tensor:
        """The signed log density times ``ratio``, masked as Pyro masks (masked entries are 0)."""
        lp = scale_and_mask(self.log_prob, ratio, self.mask)
        return -lp if self.guide else lp


def latent_names(trace) -> List[str]:
    """Names of the latent (not observed) sample sites of a trace."""
    return [n for n, s in trace.nodes.items() if s["type"] == "sample" and not s["is_observed"]]


def check_reparameterized(guide_trace, estimator: str) -> None:
    """Refuse guide sites without ``rsample``: these estimators use path gradients only."""
    for name, site in guide_trace.nodes.items():
        if site["type"] == "sample" and not site["is_observed"] and not site["fn"].has_rsample:
            raise PyroVAEError(f"estimator {estimator!r} needs reparameterized guide sites; "
                               f"site {name!r} ({type(site['fn']).__name__}) has no rsample")


def _sample_sites(trace):
    return [(n, s) for n, s in trace.nodes.items() if s["type"] == "sample"]


def _depth(traces) -> int:
    """Dims of the ``(K, *plates)`` layout: the particle dim plus every plate dim in use."""
    frames = [f for pair in traces for trace in pair for _, site in _sample_sites(trace)
              for f in site["cond_indep_stack"] if f.vectorized]
    particle = any(f.name == PARTICLE_PLATE for f in frames)  # vectorized: Pyro's outermost plate
    return -min((f.dim for f in frames), default=0) + (0 if particle else 1)


def _padded(lp: torch.Tensor, depth: int) -> torch.Tensor:
    while lp.dim() > depth:  # batch dims left of every plate are part of the site, as in Trace_ELBO
        lp = lp.sum(0)
    return lp.reshape((1,) * (depth - lp.dim()) + tuple(lp.shape))


def _log_prob(site, guide: bool, detach_guide: bool) -> torch.Tensor:
    if guide and detach_guide:  # sticking-the-landing form: q's parameters stopped, z's path kept
        return detach(site["fn"]).log_prob(site["value"])
    lp = site.get("unscaled_log_prob")  # Pyro's ELBOs have computed it already
    return site["fn"].log_prob(site["value"]) if lp is None else lp


def _terms(traces, depth: int, detach_guide: bool) -> Optional[List[_Term]]:
    """The sites' terms, particles stacked along dim 0; None if the particles' traces differ in structure."""
    per_trace = []
    for pair in traces:
        pair = [prune_subsample_sites(t) for t in pair]
        per_trace.append([(name, site, guide, _padded(_log_prob(site, guide, detach_guide), depth))
                          for guide, trace in enumerate(pair) for name, site in _sample_sites(trace)])
    first = per_trace[0]
    if any([(n, g, lp.shape) for n, _, g, lp in t] != [(n, g, lp.shape) for n, _, g, lp in first]
           for t in per_trace[1:]):
        return None
    return [_Term(name, torch.cat([t[i][3] for t in per_trace]) if len(per_trace) > 1 else lp,
                  site["scale"], site["mask"], _plates(site), not site["is_observed"], bool(guide))
            for i, (name, site, guide, lp) in enumerate(first)]


def _plates(site) -> FrozenSet[Plate]:
    return frozenset((f.name, f.dim) for f in site["cond_indep_stack"] if f.vectorized and f.name != PARTICLE_PLATE)


def _varies(lp: torch.Tensor) -> bool:
    """Whether a density differs across the K particles, i.e. depends on the draws."""
    return lp.shape[0] > 1 and not torch.equal(lp, lp[:1].expand_as(lp))


def _local_plates(terms: Sequence[_Term]) -> Tuple[FrozenSet[Plate], str]:
    """The plates every draw-dependent term shares, and why there are none (if so)."""
    latents = [t for t in terms if t.latent]
    if not latents:
        return frozenset(), "there are no latent sites"
    local = frozenset.intersection(*(t.plates for t in latents))
    if not local:
        return local, _no_shared_plate(latents)
    for t in terms:
        if not t.latent and not local <= t.plates and _varies(t.log_prob):
            if not local & t.plates:
                return frozenset(), (f"site {t.name!r} lies outside plate {_names(local)} "
                                     "and its density depends on the draws")
            local = local & t.plates
    return local, ""


def _no_shared_plate(latents: Sequence[_Term]) -> str:
    fewest = min(latents, key=lambda t: len(t.plates))
    if not fewest.plates:
        return f"latent site {fewest.name!r} is outside every plate"
    other = next(t for t in latents if not fewest.plates <= t.plates)
    return (f"latent sites {fewest.name!r} ({_names(fewest.plates)}) and {other.name!r} "
            f"({_names(other.plates)}) share no plate")


def _names(plates: FrozenSet[Plate]) -> str:
    return ", ".join(repr(name) for name, _ in sorted(plates)) if plates else "no plate"


def _reduce(x: torch.Tensor, keep: Sequence[int]) -> torch.Tensor:
    """Sum every dim of ``x`` but ``keep`` (positions in the ``(K, *plates)`` layout), keeping dims."""
    drop = [d for d in range(1, x.dim()) if d not in keep]
    return x.sum(drop, keepdim=True) if drop else x


def _outer_scale(terms: Sequence[_Term], keep: Sequence[int], depth: int) -> Scale:
    """The local latents' scale, taken outside the log-mean-exp where it is constant per element."""
    latent = next((t for t in terms if t.latent and t.guide), None) or next(t for t in terms if t.latent)
    if not isinstance(latent.scale, torch.Tensor):
        return latent.scale
    padded = _padded(latent.scale, depth)
    if any(padded.shape[d] != 1 for d in range(depth) if d not in keep):
        return 1.0  # it varies within an element: it stays on the densities, inside the weight
    return padded[0]


def _ratio(scale: Scale, outer: Scale) -> Scale:
    """``scale / outer``, 0 where ``outer`` is 0 (an element of weight 0 adds nothing)."""
    if not isinstance(scale, torch.Tensor) and not isinstance(outer, torch.Tensor):
        return scale / outer if outer else 0.0
    ref = scale if isinstance(scale, torch.Tensor) else outer
    scale, outer = (torch.as_tensor(v, dtype=ref.dtype, device=ref.device) for v in (scale, outer))
    return torch.where(outer == 0, torch.zeros_like(scale), scale / outer)


def _joint(terms: Sequence[_Term], reason: str) -> LogWeights:
    values = sum(_reduce(t.scaled(t.scale), (0,)) for t in terms)
    return LogWeights(values, 1.0, 0.0, Weighting(JOINT, reason=reason))


def log_weights_of(traces: Sequence[tuple], detach_guide: bool = False) -> LogWeights:
    """The log weights of ``traces``: one vectorized ``(model_trace, guide_trace)`` pair, or one per particle.

    With ``detach_guide`` the guide densities see stopped distribution
    parameters (the sticking-the-landing form of ``log q``), while ``z`` keeps
    its path gradient.
    """
    depth = _depth(traces)
    terms = _terms(traces, depth, detach_guide)
    if terms is None:
        return _joint_by_trace(traces, detach_guide)
    if not terms:  # an empty program: its bound is 0, as for Pyro's ELBOs
        return LogWeights(torch.zeros(1), 1.0, 0.0, Weighting(JOINT, reason="there are no sample sites"))
    local, reason = _local_plates(terms)
    if not local:
        return _joint(terms, reason)
    keep = [0] + [depth + dim for _, dim in local]
    outer = _outer_scale(terms, keep, depth)
    inside = [t for t in terms if local <= t.plates]
    shared = [t for t in terms if not local <= t.plates]
    values = sum(_reduce(t.scaled(_ratio(t.scale, outer)), keep) for t in inside)
    counted_once = sum((t.scaled(t.scale).mean(0).sum() for t in shared), 0.0)  # identical over particles
    names = tuple(sorted(name for name, _ in local))
    return LogWeights(values, outer, counted_once, Weighting(LOCAL, names, tuple(t.name for t in shared)))


def _joint_by_trace(traces, detach_guide: bool) -> LogWeights:
    """Joint weights from particles whose traces differ in structure: one total per trace."""
    totals = []
    for pair in traces:
        terms = _terms([pair], _depth([pair]), detach_guide)
        totals.append(torch.as_tensor(sum((t.scaled(t.scale).sum() for t in terms), 0.0)))
    values = torch.stack(totals)
    return LogWeights(values, 1.0, 0.0, Weighting(JOINT, reason="the particles' traces differ in structure"))

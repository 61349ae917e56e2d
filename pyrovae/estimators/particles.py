"""A clear error when a model breaks only because its particles are vectorized.

Vectorized particles run the model once inside an outermost ``pyro.plate`` of
K particles, so every latent gains a leading particle dimension. Code written
for one draw, such as ``X @ w`` with a latent ``w`` of shape ``(D,)``, then
meets a ``(K, 1, D)`` tensor and fails with a bare shape error deep inside the
model. :class:`ParticleErrors` checks, on such a failure, whether one
unvectorized draw runs; if it does, the error names the latent sites, their
particle dimension and the two ways out.
"""

from __future__ import annotations

import logging
from typing import List, Optional, Tuple

import pyro.poutine as poutine
from pyro.poutine.util import site_is_subsample
import torch

from ..errors import PyroVAEError

_SHAPE_ERRORS = (RuntimeError, ValueError, IndexError)  # what torch and Pyro raise for mismatched shapes


class ParticleErrors:
    """Mixin for Pyro ELBOs (put it before the Pyro class): explains failures under vectorized particles."""

    def _get_traces(self, model, guide, args, kwargs):
        if not (self.vectorize_particles and self.num_particles > 1):
            yield from super()._get_traces(model, guide, args, kwargs)
            return
        try:
            traces = list(super()._get_traces(model, guide, args, kwargs))
        except _SHAPE_ERRORS as err:
            if isinstance(err, PyroVAEError):
                raise
            diagnosis = _diagnose(self, model, guide, args, kwargs, err)
            if diagnosis is None:
                raise
            raise diagnosis from err
        yield from traces

    def _guess_max_plate_nesting(self, model, guide, args, kwargs):
        # Pyro announces its guess at INFO level, through a handler it installs, on every run that
        # leaves max_plate_nesting out: routine information, printed into every log. Say it at DEBUG.
        log = logging.getLogger("pyro.infer.elbo")
        level = log.level
        log.setLevel(logging.WARNING)
        try:
            super()._guess_max_plate_nesting(model, guide, args, kwargs)
        finally:
            log.setLevel(level)
        log.debug("Guessed max_plate_nesting = %d", self.max_plate_nesting)


def _runs_one_draw(model, guide, args, kwargs) -> bool:
    """Whether the model and guide run with one unvectorized draw (on a private RNG stream)."""
    try:
        with torch.random.fork_rng(), poutine.block():
            guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
            poutine.replay(model, trace=guide_trace)(*args, **kwargs)
    except Exception:  # noqa: BLE001 - any failure means the problem is not the vectorization
        return False
    return True


def _latents_before_failure(elbo, model, guide, args, kwargs) -> Tuple[str, List[Tuple[str, tuple]]]:
    """Which program failed under the particle plate, and the latents sampled before it did."""
    guide_run = poutine.trace(elbo._vectorized_num_particles(guide))
    failed, latents = "guide", []
    with torch.random.fork_rng(), poutine.block():
        try:
            guide_run(*args, **kwargs)
            failed = "model"
            model_run = poutine.trace(poutine.replay(elbo._vectorized_num_particles(model),
                                                     trace=guide_run.msngr.trace))
            model_run(*args, **kwargs)
        except Exception:  # noqa: BLE001 - the failure being explained
            pass
    for trace in (guide_run.msngr.trace,) + ((model_run.msngr.trace,) if failed == "model" else ()):
        latents += [(n, tuple(s["value"].shape)) for n, s in trace.nodes.items()
                    if s["type"] == "sample" and not s["is_observed"] and not site_is_subsample(s)
                    and (n, tuple(s["value"].shape)) not in latents]
    return failed, latents


def _diagnose(elbo, model, guide, args, kwargs, err: Exception) -> Optional[PyroVAEError]:
    """The error to raise instead of ``err``, or None when one unvectorized draw fails too."""
    if not _runs_one_draw(model, guide, args, kwargs):
        return None
    failed, latents = _latents_before_failure(elbo, model, guide, args, kwargs)
    dim = -elbo.max_plate_nesting
    named = ", ".join(f"{n!r} {list(shape)}" for n, shape in latents[-3:]) or "none yet"
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return PyroVAEError(
        f"the {failed} fails with {elbo.num_particles} vectorized particles but runs with one draw: "
        f"the particles are dim {dim} of every latent (sampled before the failure: {named}), "
        f"and the {failed} does not broadcast over it ({first_line}); write it for a leading batch "
        f"dimension (e.g. (X @ w.unsqueeze(-1)).squeeze(-1) instead of X @ w) or pass "
        f"vectorize_particles=False")

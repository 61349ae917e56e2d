"""The estimator registry: ELBO estimators by name.

Every entry is an ordinary Pyro ELBO class, so ``estimator("analytic")`` can be
passed as ``loss=`` to :class:`pyro.infer.SVI` for any model and guide.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyro.infer import ELBO

from ..errors import PyroVAEError
from ..registry import Registry


@dataclass(frozen=True)
class EstimatorSpec:
    """A registered estimator.

    :param name: registry name, as used on the command line.
    :param cls: a subclass of :class:`pyro.infer.ELBO`.
    :param summary: one line: what it estimates and how.
    :param reference: the paper and equation it implements.
    :param kl_weighting: whether the bound has a KL term that a beta or a KL
        warm-up can weight (``recon + beta * KL``); importance-weighted bounds do not.
    :param bound: which bound the loss estimates: ``"elbo"``, or ``"iwae"`` (Burda et al. 2015,
        eq. 8, tighter with more particles). Training records name it (``train_elbo``,
        ``train_iwae``), so a curve never passes one bound off as the other.
    """

    name: str
    cls: type
    summary: str
    reference: str
    kl_weighting: bool = True
    bound: str = "elbo"


ESTIMATORS: Registry[EstimatorSpec] = Registry("estimator")
"""Estimator name -> :class:`EstimatorSpec`; :func:`estimator` builds the Pyro ELBO object."""


def register_estimator(name: str, summary: str, reference: str, kl_weighting: bool = True, bound: str = "elbo"):
    """Class decorator that registers a Pyro ELBO subclass under ``name`` (see :class:`EstimatorSpec`)."""

    def wrap(cls: type) -> type:
        ESTIMATORS.register(name, EstimatorSpec(name, cls, summary, reference, kl_weighting, bound))
        return cls

    return wrap


def estimator(name: str, num_particles: int = 1, **kwargs) -> ELBO:
    """An ELBO object for the estimator ``name`` with ``num_particles`` vectorized particles.

    Extra keyword arguments go to the Pyro ELBO constructor (e.g.
    ``max_plate_nesting``). Particles are vectorized (one batched pass)
    unless ``vectorize_particles=False`` is given.
    """
    spec = ESTIMATORS[name]
    if isinstance(num_particles, bool) or not isinstance(num_particles, int) or num_particles < 1:
        raise PyroVAEError(f"num_particles must be a positive integer, got {num_particles!r}")
    kwargs.setdefault("vectorize_particles", num_particles > 1)
    return spec.cls(num_particles=num_particles, **kwargs)

"""ELBO estimators by name: each one a Pyro ELBO usable with any model and guide.

>>> from pyrovae.estimators import estimator
>>> loss = estimator("analytic", num_particles=4)   # then pyro.infer.SVI(model, guide, optim, loss=loss)
"""

from . import analytic, auto, mc  # noqa: F401  (importing registers them)
from .analytic import AnalyticELBO, MissingKLError
from .auto import AutoELBO
from .mc import MonteCarloELBO
from .registry import ESTIMATORS, EstimatorSpec, estimator, register_estimator

__all__ = [
    "ESTIMATORS", "EstimatorSpec", "estimator", "register_estimator",
    "MonteCarloELBO", "AnalyticELBO", "AutoELBO", "MissingKLError",
]

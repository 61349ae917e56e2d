"""ELBO estimators by name: each one a Pyro ELBO usable with any model and guide.

>>> from pyrovae.estimators import estimator
>>> loss = estimator("analytic", num_particles=4)   # then pyro.infer.SVI(model, guide, optim, loss=loss)
"""

from . import analytic, auto, dreg, iwae, mc, stl  # noqa: F401  (importing registers them)
from .analytic import AnalyticELBO, MissingKLError
from .auto import AutoELBO
from .dreg import DReG
from .iwae import IWAE
from .mc import MonteCarloELBO
from .registry import ESTIMATORS, EstimatorSpec, estimator, register_estimator
from .stl import STL

__all__ = [
    "ESTIMATORS", "EstimatorSpec", "estimator", "register_estimator",
    "MonteCarloELBO", "AnalyticELBO", "AutoELBO", "MissingKLError", "IWAE", "STL", "DReG",
]

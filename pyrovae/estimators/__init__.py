"""ELBO estimators by name: each one a Pyro ELBO usable with any model and guide.

>>> from pyrovae.estimators import estimator
>>> loss = estimator("analytic", num_particles=4)   # then pyro.infer.SVI(model, guide, optim, loss=loss)
"""

# Importing registers them; the order is the order of listings: the paper's two, then the rest.
from . import mc, analytic, auto, stl, iwae, dreg  # noqa: F401,I001
from .analytic import AnalyticELBO, MissingKLError
from .auto import AutoELBO
from .dreg import DReG
from .iwae import IWAE
from .mc import MonteCarloELBO
from .registry import ESTIMATORS, EstimatorSpec, estimator, register_estimator
from .stl import STL
from .weights import Weighting

__all__ = [
    "ESTIMATORS", "EstimatorSpec", "estimator", "register_estimator",
    "MonteCarloELBO", "AnalyticELBO", "AutoELBO", "MissingKLError", "IWAE", "STL", "DReG", "Weighting",
]

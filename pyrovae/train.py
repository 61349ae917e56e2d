"""The import path of :func:`fit` before the :mod:`pyrovae.training` package; kept so old code runs.

``from pyrovae.train import fit, FitResult, OPTIMIZERS, final_elbos, resolve_device`` still works;
new code imports from :mod:`pyrovae` or :mod:`pyrovae.training`.
"""

from .training import OPTIMIZERS, FitResult, TrainOptions, final_elbos, fit, resolve_device

__all__ = ["fit", "FitResult", "TrainOptions", "OPTIMIZERS", "final_elbos", "resolve_device"]

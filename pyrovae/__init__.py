"""pyrovae: Auto-Encoding Variational Bayes (Kingma & Welling, 2013) in Pyro.

A VAE whose ``model`` and ``guide`` are ordinary Pyro programs, ELBO
estimators chosen by name (each an ordinary Pyro ELBO), SVI training,
evaluation in nats per data point, class-conditional VAEs, a beta-weighted
KL with warm-up, and figures with a per-run report.

Importing ``pyrovae`` loads none of that: every public name is imported from its module on
first use (PEP 562), so ``import pyrovae`` and ``pyrovae --help`` start in a fraction of a
second and have no side effects; ``from pyrovae import VAE`` works as usual.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import TYPE_CHECKING, Any, List

__version__ = "0.1.0"

#: Each module of this package and the public names it defines.
_MODULES = {
    "compare": "compare",
    "conditional": "CONDITIONINGS ClassMeanPrior Conditioning",
    "config": "RunConfig",
    "data": "DATASETS Dataset PPCA load_dataset",
    "diagnostics": "active_units class_mean_accuracy gradient_samples gradient_variance kl_per_dimension",
    "divergence": "DivergenceError",
    "errors": "PyroVAEError PyroVAEWarning",
    "estimators": "ESTIMATORS estimator register_estimator",
    "ais": "Annealing",
    "bdmc": "BDMCResult bdmc",
    "evaluate": "LOG_LIKELIHOOD_METHODS elbo_terms evaluate_elbo log_likelihood log_weights",
    "families": "FAMILIES PRIORS Family register_family register_prior",
    "gaps": "InferenceGaps LocalFit inference_gaps",
    "klweight": "KLWeight linear_warmup",
    "likelihoods": "LIKELIHOODS LikelihoodSpec register_likelihood",
    "plots": "PLOTS figure interpolate plot reconstruct write_figures",
    "run_report": "write_run_report",
    "runs": "RunFolder load_run",
    "options": "TrainOptions",
    "training": "FitResult TrainableModel fit",
    "vae": "VAE",
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names.split()}

if TYPE_CHECKING:  # the same names, spelled out for type checkers and the API reference (griffe)
    from .ais import Annealing
    from .bdmc import BDMCResult, bdmc
    from .compare import compare
    from .conditional import CONDITIONINGS, ClassMeanPrior, Conditioning
    from .config import RunConfig
    from .data import DATASETS, PPCA, Dataset, load_dataset
    from .diagnostics import (active_units, class_mean_accuracy, gradient_samples, gradient_variance,
                              kl_per_dimension)
    from .divergence import DivergenceError
    from .errors import PyroVAEError, PyroVAEWarning
    from .estimators import ESTIMATORS, estimator, register_estimator
    from .evaluate import LOG_LIKELIHOOD_METHODS, elbo_terms, evaluate_elbo, log_likelihood, log_weights
    from .families import FAMILIES, PRIORS, Family, register_family, register_prior
    from .gaps import InferenceGaps, LocalFit, inference_gaps
    from .klweight import KLWeight, linear_warmup
    from .likelihoods import LIKELIHOODS, LikelihoodSpec, register_likelihood
    from .options import TrainOptions
    from .plots import PLOTS, figure, interpolate, plot, reconstruct, write_figures
    from .run_report import write_run_report
    from .runs import RunFolder, load_run
    from .training import FitResult, TrainableModel, fit
    from .vae import VAE

__all__ = [
    "VAE", "fit", "FitResult", "TrainOptions", "TrainableModel", "evaluate_elbo", "elbo_terms", "log_likelihood", "log_weights",
    "estimator", "ESTIMATORS", "register_estimator", "compare",
    "LOG_LIKELIHOOD_METHODS", "Annealing", "bdmc", "BDMCResult", "inference_gaps", "InferenceGaps", "LocalFit",
    "gradient_variance", "gradient_samples", "active_units", "class_mean_accuracy", "kl_per_dimension",
    "PLOTS", "plot", "figure", "write_figures", "write_run_report", "reconstruct", "interpolate",
    "CONDITIONINGS", "Conditioning", "ClassMeanPrior", "KLWeight", "linear_warmup",
    "FAMILIES", "PRIORS", "Family", "register_family", "register_prior", "LIKELIHOODS", "LikelihoodSpec", "register_likelihood",
    "DATASETS", "Dataset", "PPCA", "load_dataset", "RunConfig", "RunFolder", "load_run", "PyroVAEError",
    "PyroVAEWarning", "DivergenceError",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use, and keep it; ``pyrovae.<module>`` imports
    that module, as it would have been after an eager ``import pyrovae``."""
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'pyrovae' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """The package's module type: importing a submodule never hides the public name it shares.

    ``pyrovae.compare`` is the function and ``pyrovae/compare.py`` its module (likewise ``bdmc``);
    the import system would set the package attribute to the module once the module is
    imported, so that assignment is dropped and the name keeps resolving to the function.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == name:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

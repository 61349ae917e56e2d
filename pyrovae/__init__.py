"""pyrovae: Auto-Encoding Variational Bayes (Kingma & Welling, 2013) in Pyro.

A VAE whose ``model`` and ``guide`` are ordinary Pyro programs, ELBO
estimators chosen by name (each an ordinary Pyro ELBO), SVI training, and
evaluation in nats per data point.
"""

from .compare import compare
from .config import RunConfig
from .data import DATASETS, Dataset, PPCA, load_dataset
from .diagnostics import active_units, gradient_samples, gradient_variance
from .divergence import DivergenceError
from .errors import PyroVAEError, PyroVAEWarning
from .estimators import ESTIMATORS, estimator, register_estimator
from .evaluate import elbo_terms, evaluate_elbo, log_likelihood, log_weights
from .families import FAMILIES, PRIORS, Family, register_family, register_prior
from .likelihoods import LIKELIHOODS, LikelihoodSpec, register_likelihood
from .runs import RunFolder, load_run
from .train import FitResult, fit
from .vae import VAE

__version__ = "0.1.0"

__all__ = [
    "VAE", "fit", "FitResult", "evaluate_elbo", "elbo_terms", "log_likelihood", "log_weights",
    "estimator", "ESTIMATORS", "register_estimator", "compare",
    "gradient_variance", "gradient_samples", "active_units",
    "FAMILIES", "PRIORS", "Family", "register_family", "register_prior", "LIKELIHOODS", "LikelihoodSpec", "register_likelihood",
    "DATASETS", "Dataset", "PPCA", "load_dataset", "RunConfig", "RunFolder", "load_run", "PyroVAEError",
    "PyroVAEWarning", "DivergenceError",
]

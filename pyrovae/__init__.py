"""pyrovae: Auto-Encoding Variational Bayes (Kingma & Welling, 2013) in Pyro.

A VAE whose ``model`` and ``guide`` are ordinary Pyro programs, ELBO
estimators chosen by name (each an ordinary Pyro ELBO), SVI training,
evaluation in nats per data point, class-conditional VAEs, a beta-weighted
KL with warm-up, and figures with a per-run report.
"""

from .compare import compare
from .conditional import CONDITIONINGS, ClassMeanPrior, Conditioning
from .config import RunConfig
from .data import DATASETS, Dataset, PPCA, load_dataset
from .diagnostics import active_units, class_mean_accuracy, gradient_samples, gradient_variance, kl_per_dimension
from .divergence import DivergenceError
from .errors import PyroVAEError, PyroVAEWarning
from .estimators import ESTIMATORS, estimator, register_estimator
from .evaluate import elbo_terms, evaluate_elbo, log_likelihood, log_weights
from .families import FAMILIES, PRIORS, Family, register_family, register_prior
from .klweight import KLWeight, linear_warmup
from .likelihoods import LIKELIHOODS, LikelihoodSpec, register_likelihood
from .plots import PLOTS, figure, interpolate, plot, reconstruct, write_figures
from .run_report import write_run_report
from .runs import RunFolder, load_run
from .train import FitResult, fit
from .vae import VAE

__version__ = "0.1.0"

__all__ = [
    "VAE", "fit", "FitResult", "evaluate_elbo", "elbo_terms", "log_likelihood", "log_weights",
    "estimator", "ESTIMATORS", "register_estimator", "compare",
    "gradient_variance", "gradient_samples", "active_units", "class_mean_accuracy", "kl_per_dimension",
    "PLOTS", "plot", "figure", "write_figures", "write_run_report", "reconstruct", "interpolate",
    "CONDITIONINGS", "Conditioning", "ClassMeanPrior", "KLWeight", "linear_warmup",
    "FAMILIES", "PRIORS", "Family", "register_family", "register_prior", "LIKELIHOODS", "LikelihoodSpec", "register_likelihood",
    "DATASETS", "Dataset", "PPCA", "load_dataset", "RunConfig", "RunFolder", "load_run", "PyroVAEError",
    "PyroVAEWarning", "DivergenceError",
]

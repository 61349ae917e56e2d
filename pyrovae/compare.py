"""``compare()``: the paper's Figure 2 protocol and beyond, for several estimators side by side.

For every latent size and seed, each estimator trains the same architecture from the same
initial weights on the same minibatch sequence (``fit`` draws data order from its own seeded
stream) on the same device. At checkpoints, the gradients of *every* compared estimator are
sampled at that run's current parameters on one fixed minibatch, so variance ratios compare
estimators at identical parameters. ``report.py`` turns the records into tables and figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import pyro
import torch

from . import distributed
from .data import Dataset
from .diagnostics import active_units, gradient_samples, summarize, variance_ratio
from .evaluate import log_likelihood
from .registry import Registry
from .errors import PyroVAEError
from .estimators import ESTIMATORS
from .options import TrainOptions
from .training import final_elbos, fit, resolve_device
from .vae import VAE
from .validation import check_batch_size, check_positive, validate_data


@dataclass(frozen=True)
class Setup:
    """An architecture and optimizer preset for the comparison."""

    hidden: tuple
    activation: str
    optimizer: str
    lr: float
    description: str


SETUPS: Registry[Setup] = Registry("setup")
SETUPS.register("paper", Setup((500,), "tanh", "adagrad", 0.02,
                               "Kingma & Welling 2013 appendix C: one tanh layer of 500, Adagrad"))
SETUPS.register("modern", Setup((400,), "relu", "adam", 1e-3, "one ReLU layer of 400, Adam 1e-3"))


def _checkpoints(epochs: int) -> List[int]:
    return sorted({0, max(1, epochs // 2), epochs})


def _gradient_probe(vae, probe, estimators, particles, repeats, seed) -> Dict[str, Any]:
    """Gradient statistics of every estimator at the current parameters, and ratios to the first."""
    samples = {e: gradient_samples(vae, probe, e, repeats, particles, seed) for e in estimators}
    ref = estimators[0]
    stats = {e: {g: summarize(s) for g, s in groups.items()} for e, groups in samples.items()}
    ratios = {e: {g: dict(zip(("ratio", "low", "high"), variance_ratio(samples[e][g], samples[ref][g])))
                  for g in samples[e]} for e in estimators[1:]}
    return {"stats": stats, "ratios_to_" + ref: ratios}


def run_one(data: Dataset, estimator: str, z_dim: int, seed: int, setup: Setup, *, estimators: Sequence[str],
            epochs: int, particles: int, batch_size: int, lr: float, device: str, ll_samples: int,
            grad_repeats: int, probe: torch.Tensor, ranks: Optional[distributed.Ranks] = None) -> Dict[str, Any]:
    """Train one (estimator, latent size, seed) cell and measure it (``ranks``: see :func:`compare`)."""
    pyro.set_rng_seed(seed)  # identical initial weights for every estimator
    vae = VAE(data.x_dim, z_dim, setup.hidden, setup.activation).to(resolve_device(device))
    grads: Dict[int, Any] = {}
    checkpoints = _checkpoints(epochs)

    def probe_at(epoch, model):
        if epoch in checkpoints:
            grads[epoch] = _gradient_probe(model, probe, list(estimators), particles, grad_repeats, seed)

    probe_at(0, vae)
    result = fit(vae, data.train, data.test, estimator=estimator, num_particles=particles, epochs=epochs,
                 batch_size=batch_size, lr=lr, optimizer=setup.optimizer, device=device, seed=seed,
                 dynamic_binarization=data.dynamic, progress=False, callback=probe_at, ranks=ranks)
    steps = epochs * -(-len(data.train) // batch_size)
    return {
        "estimator": estimator, "z_dim": z_dim, "seed": seed, "metrics": result.metrics,
        "final_elbo": final_elbos(vae, data.test, seed, ranks=ranks),
        "log_likelihood": log_likelihood(vae, data.test, num_samples=ll_samples, seed=seed, ranks=ranks),
        "active_units": active_units(vae, data.test)[0],
        "seconds_per_step": result.summary["train_seconds"] / steps,
        "device": result.summary["device"], "gradients": grads,
    }


def _validate(data: Dataset, estimators: Sequence[str], latent_dims: Sequence[int], preset: Setup, *,
              seeds: int, epochs: int, particles: int, batch_size: int, lr: float, device: str, ll_samples: int,
              grad_repeats: int) -> None:
    """Every check of the whole grid, before its first run: a bad cell would otherwise fail hours in."""
    if not estimators or not latent_dims:
        raise PyroVAEError("compare needs at least one estimator and one latent dimension")
    for name in estimators:
        ESTIMATORS.check(name)
    check_positive(seeds=seeds, ll_samples=ll_samples, grad_repeats=grad_repeats, **{
        f"latent dimension {i + 1}": z for i, z in enumerate(latent_dims)})
    TrainOptions(epochs=epochs, batch_size=batch_size, lr=lr, num_particles=particles, device=device)
    resolve_device(device)
    vae = VAE(data.x_dim, latent_dims[0], preset.hidden, preset.activation)  # the likelihood every cell uses
    for rows, what in ((data.train, "train data"), (data.test, "test data")):
        validate_data(rows, x_dim=vae.x_dim, likelihood=vae.likelihood_spec, name=what, keep_float=True)
    check_batch_size(batch_size, len(data.train))


def compare(data: Dataset, estimators: Sequence[str], latent_dims: Sequence[int], *, seeds: int = 3,
            epochs: int = 10, particles: int = 1, setup: str = "modern", batch_size: int = 100,
            lr: Optional[float] = None, device: str = "auto", ll_samples: int = 1000, grad_repeats: int = 50,
            on_run=None, ranks: Optional[distributed.Ranks] = None) -> Dict[str, Any]:
    """Run the grid (latent size x seed x estimator) and return every record (see ``report.py``).

    ``ranks`` (from :func:`pyrovae.distributed.init_from_env` under ``torchrun``) trains and
    evaluates every cell data-parallel; the records are the same on every rank.
    """
    preset = SETUPS[setup]
    _validate(data, estimators, latent_dims, preset, seeds=seeds, epochs=epochs, particles=particles,
              batch_size=batch_size, lr=lr or preset.lr, device=device, ll_samples=ll_samples,
              grad_repeats=grad_repeats)
    g = torch.Generator().manual_seed(0)
    probe = data.train[:batch_size]
    probe = torch.bernoulli(probe, generator=g) if data.dynamic else probe
    runs = []
    for z_dim in latent_dims:
        for seed in range(seeds):
            for est in estimators:
                runs.append(run_one(data, est, z_dim, seed, preset, estimators=estimators, epochs=epochs,
                                    particles=particles, batch_size=batch_size, lr=lr or preset.lr,
                                    device=device, ll_samples=ll_samples, grad_repeats=grad_repeats,
                                    probe=probe, ranks=ranks))
                if on_run is not None:
                    on_run(runs[-1])
    return {"dataset": data.name, "binarize": data.binarize, "estimators": list(estimators),
            "latent_dims": list(latent_dims), "seeds": seeds, "epochs": epochs, "particles": particles,
            "setup": setup, "setup_detail": preset.description, "batch_size": batch_size,
            "lr": lr or preset.lr, "ll_samples": ll_samples, "grad_repeats": grad_repeats, "runs": runs}

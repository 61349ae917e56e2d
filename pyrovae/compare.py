"""``compare()``: the paper's Figure 2 protocol and beyond, for several estimators side by side.

For every latent size and seed, each estimator trains the same architecture from the same
initial weights on the same minibatch sequence (``fit`` draws data order from its own seeded
stream) on the same device. At checkpoints, the gradients of *every* compared estimator are
sampled at that run's current parameters on one fixed minibatch, so variance ratios compare
estimators at identical parameters. ``report.py`` turns the records into tables and figures.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, FrozenSet, Optional, Sequence, Tuple

import pyro
import torch

from . import distributed
from .data import Dataset
from .diagnostics import active_units, gradient_samples, summarize, variance_ratio
from .evaluate import log_likelihood
from .registry import Registry
from .errors import PyroVAEError
from .estimators import ESTIMATORS
from .grid import GridFolder
from .networks import INITS
from .options import TrainOptions
from .training import final_elbos, fit, resolve_device
from .training.budget import Budget
from .vae import VAE
from .validation import check_batch_size, check_positive, validate_data


@dataclass(frozen=True)
class Setup:
    """An architecture, initialization and optimizer preset for the comparison."""

    hidden: tuple
    activation: str
    optimizer: str
    lr: float
    description: str
    init: str = "torch"


SETUPS: Registry[Setup] = Registry("setup")
SETUPS.register("paper", Setup((500,), "tanh", "adagrad", 0.02,
                               "Kingma & Welling 2013 appendix C: one tanh layer of 500, Adagrad, "
                               "weights and biases from N(0, 0.01^2)", init="paper"))
SETUPS.register("modern", Setup((400,), "relu", "adam", 1e-3, "one ReLU layer of 400, Adam 1e-3"))
SETUPS.register("iwae", Setup((200, 200), "tanh", "adam", 1e-3,
                              "Burda et al. 2015, one stochastic layer: two tanh layers of 200, Adam 1e-3 "
                              "(without the paper's learning-rate schedule)"))


@dataclass(frozen=True)
class Grid:
    """The settings of a comparison grid; :func:`compare` documents each."""

    estimators: Tuple[str, ...]
    latent_dims: Tuple[int, ...]
    seeds: int = 3
    epochs: int = 10
    samples: Optional[int] = None
    particles: int = 1
    setup: str = "modern"
    init: Optional[str] = None
    batch_size: int = 100
    lr: Optional[float] = None
    device: str = "auto"
    ll_samples: int = 1000
    ll_rows: Optional[int] = None
    grad_repeats: int = 50
    curve_points: int = 12
    grad_points: int = 3

    @property
    def preset(self) -> Setup:
        """The architecture preset."""
        return SETUPS[self.setup]

    @property
    def rate(self) -> float:
        """The learning rate: the one given, else the preset's."""
        return self.lr or self.preset.lr

    def fit_options(self, estimator: str, seed: int) -> Dict[str, Any]:
        """The training options of one run."""
        return dict(estimator=estimator, num_particles=self.particles, epochs=self.epochs, samples=self.samples,
                    batch_size=self.batch_size, lr=self.rate, optimizer=self.preset.optimizer, device=self.device,
                    seed=seed, curve_points=self.curve_points)

    def budget(self, rows: int) -> Budget:
        """The training budget of every run on ``rows`` training rows."""
        return Budget(self.epochs, self.samples, rows, self.batch_size)

    def probe_steps(self, budget: Budget) -> FrozenSet[int]:
        """The curve points where gradients are probed: ``grad_points`` of them, evenly spaced in log
        samples seen, ending at the last step (and, before training, the initial weights)."""
        points = sorted(budget.points(self.curve_points))
        total = budget.total_steps
        return frozenset(min(points, key=lambda p: abs(math.log(p) - math.log(total) * k / self.grad_points))
                         for k in range(1, self.grad_points + 1))

    def settings(self, data: Dataset) -> Dict[str, Any]:
        """Everything that decides the grid's numbers, JSON-ready (``grid.json``, the report's header)."""
        return {"dataset": data.name, "binarize": data.binarize, **{k: _plain(v) for k, v in asdict(self).items()},
                "lr": self.rate, "init": self.init or self.preset.init, "setup_detail": self.preset.description}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def build_vae(data: Dataset, grid: Grid, z_dim: int) -> VAE:
    """The grid's architecture with ``z_dim`` latents, initialized as the grid says (seed torch first)."""
    vae = VAE(data.x_dim, z_dim, grid.preset.hidden, grid.preset.activation)
    INITS[grid.init or grid.preset.init](vae)
    return vae


def _gradient_probe(vae, probe, estimators, particles, repeats, seed) -> Dict[str, Any]:
    """Gradient statistics of every estimator at the current parameters, and ratios to the first."""
    samples = {e: gradient_samples(vae, probe, e, repeats, particles, seed) for e in estimators}
    ref = estimators[0]
    stats = {e: {g: summarize(s) for g, s in groups.items()} for e, groups in samples.items()}
    ratios = {e: {g: dict(zip(("ratio", "low", "high"), variance_ratio(samples[e][g], samples[ref][g])))
                  for g in samples[e]} for e in estimators[1:]}
    return {"stats": stats, "ratios_to_" + ref: ratios}


def run_one(data: Dataset, grid: Grid, estimator: str, z_dim: int, seed: int, probe: torch.Tensor, *,
            folder: Optional[GridFolder] = None, ranks: Optional[distributed.Ranks] = None) -> Dict[str, Any]:
    """Train one (estimator, latent size, seed) run and measure it, or return it as ``folder`` kept it.

    The gradient probes at the curve points are part of the curve's records, so a resumed run
    has those of the part trained before the interruption (``ranks``: see :func:`compare`).
    """
    kept = None if folder is None else folder.finished(z_dim, seed, estimator)
    if kept is not None:
        return kept
    pyro.set_rng_seed(seed)  # identical initial weights for every estimator
    vae = build_vae(data, grid, z_dim).to(resolve_device(grid.device))
    probes_at = grid.probe_steps(grid.budget(len(data.train)))

    def probe_point(record, model):
        if record["step"] in probes_at:
            record["gradients"] = _gradient_probe(model, probe, grid.estimators, grid.particles, grid.grad_repeats,
                                                  seed)

    grads = {0: _gradient_probe(vae, probe, grid.estimators, grid.particles, grid.grad_repeats, seed)}
    out = None if folder is None else folder.run_folder(z_dim, seed, estimator)
    result = fit(vae, data.train, data.test, out=None if out is None else str(out), figures=False, progress=False,
                 resume=folder is not None and folder.started(z_dim, seed, estimator), point_callback=probe_point,
                 dynamic_binarization=data.dynamic, ranks=ranks, **grid.fit_options(estimator, seed))
    grads.update({c["samples_seen"]: c.pop("gradients") for c in result.curve if "gradients" in c})
    record = measure(vae, data, grid, {
        "estimator": estimator, "z_dim": z_dim, "seed": seed, "metrics": result.metrics, "curve": result.curve,
        "samples_seen": result.summary["samples_seen"], "gradients": grads, "device": result.summary["device"],
        "seconds_per_step": result.summary["train_seconds"] / grid.budget(len(data.train)).total_steps}, ranks)
    if folder is not None and (ranks is None or ranks.main):
        folder.keep(record)
    return record


def measure(vae, data: Dataset, grid: Grid, record: Dict[str, Any], ranks=None) -> Dict[str, Any]:
    """``record`` of a trained run with its final measurements: test ELBOs, log p(x) (on the first
    ``grid.ll_rows`` test rows), active units."""
    seed = record["seed"]
    test = data.test if grid.ll_rows is None else data.test[:grid.ll_rows]
    return {**record, "final_elbo": final_elbos(vae, data.test, seed, ranks=ranks),
            "log_likelihood": log_likelihood(vae, test, num_samples=grid.ll_samples, seed=seed, ranks=ranks),
            "active_units": active_units(vae, data.test)[0]}


def _validate(data: Dataset, grid: Grid) -> None:
    """Every check of the whole grid, before its first run: a bad cell would otherwise fail hours in."""
    if not grid.estimators or not grid.latent_dims:
        raise PyroVAEError("compare needs at least one estimator and one latent dimension")
    for name in grid.estimators:
        ESTIMATORS.check(name)
    INITS.check(grid.init or grid.preset.init)
    check_positive(seeds=grid.seeds, ll_samples=grid.ll_samples, grad_repeats=grid.grad_repeats,
                   curve_points=grid.curve_points, grad_points=grid.grad_points, **{
                       f"latent dimension {i + 1}": z for i, z in enumerate(grid.latent_dims)})
    if grid.ll_rows is not None:
        check_positive(ll_rows=grid.ll_rows)
    TrainOptions(**grid.fit_options(grid.estimators[0], 0))
    resolve_device(grid.device)
    vae = build_vae(data, grid, grid.latent_dims[0])  # the likelihood every cell uses
    for rows, what in ((data.train, "train data"), (data.test, "test data")):
        validate_data(rows, x_dim=vae.x_dim, likelihood=vae.likelihood_spec, name=what, keep_float=True)
    check_batch_size(grid.batch_size, len(data.train))


def compare(data: Dataset, estimators: Sequence[str], latent_dims: Sequence[int], *, seeds: int = 3,
            epochs: int = 10, samples: Optional[int] = None, particles: int = 1, setup: str = "modern",
            init: Optional[str] = None, batch_size: int = 100, lr: Optional[float] = None, device: str = "auto",
            ll_samples: int = 1000, ll_rows: Optional[int] = None, grad_repeats: int = 50, curve_points: int = 12,
            grad_points: int = 3, out: Optional[str] = None, resume: bool = False, batched: Optional[bool] = None,
            on_run=None, ranks: Optional[distributed.Ranks] = None,
            shard: Optional[Tuple[int, int]] = None) -> Dict[str, Any]:
    """Run the grid (latent size x seed x estimator) and return every record (see ``report.py``).

    :param samples: the training budget of every run in samples (see the option ``samples``);
        None: ``epochs`` epochs.
    :param setup: the architecture preset (:data:`SETUPS`); ``init``: a name in
        :data:`pyrovae.networks.INITS` instead of the preset's.
    :param ll_rows: estimate log p(x) on the first ``ll_rows`` test rows (None: all of them).
    :param curve_points: log-spaced points of samples seen where train and test ELBO are recorded;
        ``grad_points`` of them (and the initial weights) also probe the gradient variance.
    :param out: a folder that keeps every run as it goes (:mod:`pyrovae.grid`); with ``resume``
        an interrupted grid continues there, with the same records as an uninterrupted one.
    :param batched: train each latent size's runs as one batched model (:mod:`pyrovae.grid_batched`);
        None: where that is faster, on CUDA (the benchmark in docs/compare.md), when the grid allows it.
    :param on_run: ``on_run(record)`` after each run.
    :param ranks: from :func:`pyrovae.distributed.init_from_env` under ``torchrun``: every cell
        trains and evaluates data-parallel; the records are the same on every rank.
    :param shard: ``(i, n)``: train only the runs whose place in the grid's order (latent size,
        then seed, then estimator) is ``i`` modulo ``n``, and return their records, so that ``n``
        processes given the same ``out`` (and ``resume``) train one grid together, one run
        each at a time. A last call without ``shard`` finds every run finished and returns them all.
    """
    grid = Grid(tuple(estimators), tuple(latent_dims), seeds, epochs, samples, particles, setup, init, batch_size,
                lr, device, ll_samples, ll_rows, grad_repeats, curve_points, grad_points)
    SETUPS.check(setup)
    _validate(data, grid)
    _check_shard(shard, out, batched, ranks)
    settings = grid.settings(data)
    folder = None if out is None else GridFolder(out, settings, resume, writer=ranks is None or ranks.main)
    g = torch.Generator().manual_seed(0)
    probe = data.train[:batch_size]
    probe = torch.bernoulli(probe, generator=g) if data.dynamic else probe
    runs, together = [], shard is None and _batched(grid, batched, ranks)
    for z_dim in latent_dims:
        if together:
            from .grid_batched import run_group  # it builds on this module

            for record in run_group(data, grid, z_dim, probe, folder):
                runs.append(record)
                if on_run is not None:
                    on_run(record)
            continue
        for seed in range(seeds):
            for est in estimators:
                if shard is not None and _place(grid, z_dim, seed, est) % shard[1] != shard[0]:
                    continue
                runs.append(run_one(data, grid, est, z_dim, seed, probe, folder=folder, ranks=ranks))
                if on_run is not None:
                    on_run(runs[-1])
    return {**settings, "runs": runs}


def _place(grid: Grid, z_dim: int, seed: int, estimator: str) -> int:
    """The run's index in the grid's order: latent size, then seed, then estimator."""
    per_seed = len(grid.estimators)
    return (grid.latent_dims.index(z_dim) * grid.seeds + seed) * per_seed + grid.estimators.index(estimator)


def _check_shard(shard: Optional[Tuple[int, int]], out: Optional[str], batched: Optional[bool], ranks) -> None:
    """A shard ``(i, n)`` needs 0 <= i < n, a shared folder, and runs trained one by one in one process."""
    if shard is None:
        return
    i, n = shard
    if not 0 <= i < n:
        raise PyroVAEError(f"shard {i}/{n} does not exist: a grid in n shards has shards 0 to n-1")
    if out is None or batched or ranks is not None:
        raise PyroVAEError("a shard trains its runs one by one in one process, into the --out folder the shards "
                           "share: give --out, and no --batched on or torchrun")


def _batched(grid: Grid, batched: Optional[bool], ranks) -> bool:
    """Whether to train each latent size batched: as asked, or by default on CUDA where the grid allows."""
    from .grid_batched import batchable

    if batched is None:
        return resolve_device(grid.device).type == "cuda" and batchable(grid, ranks)
    if batched and not batchable(grid, ranks):
        raise PyroVAEError("batched runs need estimators among mc, analytic and stl, one particle and one "
                           "process (no torchrun)")
    return batched

"""``fit()``: stochastic variational inference on any Pyro model, with metrics, checkpoints and resume.

The step is Pyro's own: the estimator's ``differentiable_loss`` of ``model.model``/``model.guide``
on one minibatch, then one torch optimizer step over all parameters. This is what
:class:`pyro.infer.SVI` does with a ``PyroOptim``, minus the host syncs (``.item()``), minus one
optimizer object per parameter tensor, and by default recorded once and replayed
(:mod:`pyrovae.fastpath`). The training set lives on the device as one tensor and a minibatch
is ``pyro.plate(..., subsample=idx)``: no DataLoader.

Reliability: every input is checked before any work starts; a checkpoint is written at the end
of every epoch and, with ``checkpoint_every``, every N steps, holding everything needed to
continue bit for bit on CPU; a NaN or infinity stops the run at the next checkpoint, before
anything non-finite is saved, and the error names the step and the term that went bad
(:mod:`pyrovae.training.guard`).
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional

import pyro
import torch

from .. import distributed
from ..config import RunConfig
from ..data import Dataset
from ..errors import PyroVAEError, PyroVAEWarning
from ..estimators import estimator as make_estimator
from ..evaluate import seeded
from ..fastpath import OPTIMIZERS, build_step, make_optimizer
from ..klweight import linear_warmup
from ..options import TrainOptions, device_name
from ..runs import RunFolder
from ..validation import check_batch_size, validate_array
from .budget import Budget
from .checkpointing import Checkpoints
from .counters import Counters
from .curve import Curve
from .epochs import Epochs
from .folders import checkpoint_to_resume, check_folder, resume_from
from .guard import DivergenceGuard
from .denormals import denormals_flushed
from .threads import training_threads
from .loop import Loop, TestSet
from .outcome import FigureSource, finish_run, summary_of
from .protocol import as_data, check_data, check_model, kl_weight_restored, labels_for, run_config, \
    supports_kl_weight


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained model, one metrics record per epoch, and the summary."""

    vae: Any
    metrics: List[Dict[str, Any]] = field(default_factory=list)
    summary: Dict[str, Any] = field(default_factory=dict)
    #: Files written at the end besides the run's own (``{"report": path, "recon": path, ...}``).
    files: Dict[str, str] = field(default_factory=dict)
    #: Train and test ELBO at the log-spaced points of samples seen (option ``curve_points``).
    curve: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def model(self) -> Any:
        """The trained module (the same object as :attr:`vae`, under a name that fits any model)."""
        return self.vae


@dataclass
class TrainingData:
    """The checked rows ``fit`` trains and tests on, with their labels as the programs take them."""

    train: torch.Tensor
    test: Optional[torch.Tensor]
    train_y: Optional[torch.Tensor]
    test_y: Optional[torch.Tensor]
    dynamic: bool
    image_shape: Optional[tuple] = None
    class_names: Optional[tuple] = None


def resolve_device(device: str) -> torch.device:
    """``"auto"`` picks CUDA when present; otherwise the named torch device, which must exist."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device_name("device", device)  # the option's own check: a torch device string
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PyroVAEError(f"device {device!r} requested but CUDA is not available here")
    return dev


def fit(model, train, test=None, *, options: Optional[TrainOptions] = None, out: Optional[str] = None,
        resume: bool = False, progress: bool = True, callback: Optional[Callable[[int, Any], None]] = None,
        train_labels=None, test_labels=None, dynamic_binarization: bool = False,
        ranks: Optional[distributed.Ranks] = None, config: Optional[RunConfig] = None, figures: bool = True,
        point_callback: Optional[Callable[[Dict[str, Any], Any], None]] = None, **overrides: Any) -> FitResult:
    """Train ``model`` on ``train`` with SVI and the named ELBO estimator.

    ``model`` is a :class:`~pyrovae.VAE` or any module that follows
    :class:`~pyrovae.training.TrainableModel` (Pyro ``model``/``guide`` taking ``(x, subsample)``).
    Seed its initial weights yourself (``pyro.set_rng_seed``) before building it; the option
    ``seed`` covers everything ``fit`` draws: data order, binarization and the estimator's noise.

    :param train: ``(N, D)`` array or tensor, or a :class:`~pyrovae.Dataset` (its test rows,
        labels, binarization and image shape then come with it); ``test`` likewise (optional).
    :param options: a :class:`~pyrovae.options.TrainOptions`; every one of its fields can also be
        given as a keyword (``fit(vae, x, estimator="iwae", num_particles=5, epochs=20)``), which
        wins over ``options``. They are documented there and in docs/cli.md.
    :param out: run folder for ``config.json``, ``checkpoint.pt``, ``metrics.json``, ``summary.json``
        and ``report.md`` (nothing is written without it). It is locked (``run.lock``) while ``fit``
        runs; if ``fit`` fails before its first checkpoint, it is removed again.
    :param resume: continue the run in ``out`` from its last checkpoint up to ``epochs``; on CPU
        with the same seed this equals an uninterrupted run. A folder whose run stopped before its
        first checkpoint starts over.
    :param callback: ``callback(epoch, model)`` after every epoch (after its checkpoint); it should
        leave the global RNG alone (see :func:`pyrovae.evaluate.seeded`).
    :param point_callback: ``point_callback(record, model)`` at every point of the learning curve
        (option ``curve_points``), before the checkpoint that follows it; what it adds to the
        JSON-ready ``record`` is checkpointed with it, so it survives a resume. Same RNG rule.
    :param train_labels: integer class labels of the ``train`` rows (``test_labels``: of ``test``),
        passed to the programs as ``y`` (a VAE takes them only when it is conditional).
    :param dynamic_binarization: draw a fresh Bernoulli binarization of grey-level ``train`` every epoch.
    :param ranks: this process's place in a data-parallel run, from
        :func:`pyrovae.distributed.init_from_env` under ``torchrun`` (None: one process). Each rank
        trains on its shard of every global batch, and rank 0 alone writes ``out``.
    :param config: the :class:`~pyrovae.config.RunConfig` to store as ``config.json`` (the command
        line's); its training options are used unless ``options``/keywords say otherwise.
    :param figures: draw the run's figures into ``out`` at the end (every kind that applies: the
        image grids need a :class:`~pyrovae.Dataset` with an image shape); a model that is not a
        pyrovae VAE gets none, and ``summary.json`` and the report say so.
    :returns: a :class:`FitResult`; ELBOs are in nats per data point.
    :raises PyroVAEError: for bad input, before anything is written;
        :class:`~pyrovae.divergence.DivergenceError` when training becomes non-finite.
    """
    opts = _options(options, config, overrides)
    dev = _check(model, opts)
    data = _training_data(model, train, test, train_labels, test_labels, dynamic_binarization, dev, ranks)
    check_batch_size(opts.batch_size, len(data.train), 1 if ranks is None else ranks.world_size)
    est = make_estimator(opts.estimator, opts.num_particles, max_plate_nesting=1)
    model.to(dev)
    _preflight(model, est, data, dev)
    folder, resume = check_folder(out, resume, ranks)
    if ranks is not None:
        ranks.copy_from_main(model.state_dict().values())  # as DDP does: every rank starts from rank 0's weights
    stored = _stored_config(model, opts, config, data.dynamic)
    loop, checkpoints = _build_loop(model, est, data, opts, dev, folder, ranks, callback)
    session = folder.session(stored, fresh=not resume) if folder else contextlib.nullcontext()
    # The param store scope keeps the user's store free of our names; the loop sets the KL weight
    # per epoch, and the model's own weight is back when training ends.
    with session, pyro.get_param_store().scope(), kl_weight_restored(model), \
            training_threads(opts.threads, ranks, dev, progress), denormals_flushed(opts.keep_denormals, dev):
        budget = Budget(opts.epochs, opts.samples, len(data.train), opts.batch_size)
        loop.curve = _curve(budget, opts, data, loop.test, ranks, point_callback)
        _start(checkpoints, out, resume, ranks, opts, budget)
        resumed_at = (loop.counters.epoch, loop.counters.step) if resume else None
        loop.run(budget, progress)
        summary = summary_of(loop, opts.estimator, est, dev, data, ranks)
        summary["samples_seen"] = budget.samples_after(loop.done_steps)  # a samples budget may end inside an epoch
        if loop.counters.curve:
            summary["curve"] = loop.counters.curve
        source = FigureSource(model, data.test, data.test_y, data.image_shape, data.class_names, opts.seed) \
            if figures else None
        summary, files = finish_run(folder, stored, summary, loop.counters.metrics, source, resumed_at)
    return FitResult(model, loop.counters.metrics, summary, files, loop.counters.curve)


def _options(options: Optional[TrainOptions], config: Optional[RunConfig], overrides: Mapping[str, Any]
             ) -> TrainOptions:
    """The training options: ``options`` (or the config's), then the keywords."""
    base = options if options is not None else config if config is not None else TrainOptions()
    return base.training().with_overrides(overrides)


def _check(model, opts: TrainOptions) -> torch.device:
    """Checks of the model against the options; returns the device to train on."""
    check_model(model)
    if (opts.beta != 1 or opts.kl_warmup_epochs) and not supports_kl_weight(model):
        raise PyroVAEError(f"beta and the KL warm-up need a model with a KL weight (kl_weight and kl_weighted, as "
                           f"pyrovae's VAE has); {type(model).__name__} has none")
    if opts.tensorboard:
        from ..tblog import require_tensorboard  # the optional package, checked before any work
        require_tensorboard()
    return resolve_device(opts.device)


def _training_data(model, train, test, train_labels, test_labels, dynamic: bool, dev: torch.device,
                   ranks) -> TrainingData:
    """The checked rows in the model's dtype, and their labels, where training needs them."""
    image_shape = class_names = None
    if isinstance(train, Dataset):
        train, test, train_labels, test_labels, dynamic, image_shape, class_names = (
            train.train, train.test if test is None else test, train.train_labels, train.test_labels,
            train.dynamic, train.image_shape, train.class_names)
    dtype = next(model.parameters()).dtype
    # A data-parallel rank keeps the training rows on the host and moves only its shard of each
    # epoch to its device. Dynamic binarization redraws every row on the device, as one process
    # does, so there every rank holds the whole set (docs/distributed.md).
    hold = torch.device("cpu") if ranks is not None and not dynamic else dev
    x = _prepare(model, train, "train data", hold, dtype)
    x_test = None if test is None else _prepare(model, test, "test data", dev, dtype)
    return TrainingData(x, x_test, labels_for(model, train_labels, x, "train labels"),
                        labels_for(model, test_labels, x_test, "test labels"), dynamic, image_shape, class_names)


def _prepare(model, x, what: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    x = validate_array(x, name=what, keep_float=True).to(device=device, dtype=dtype)
    # Checked again in the model's dtype: a float64 value may overflow, or round onto a support
    # boundary (1 - 1e-9 becomes 1.0 in float32, outside the Beta likelihood's (0, 1)).
    x = validate_array(x, name=what, keep_float=True)
    check_data(model, x, what)
    return x


def _preflight(model, est, data: TrainingData, device: torch.device) -> None:
    """Run the loss once on two rows, on a private RNG stream, so model/estimator errors surface
    before any file is written."""
    with seeded(0, device):
        est.differentiable_loss(model.model, model.guide, data.train[:2].to(device),
                                **{k: y[:2].to(device) for k, y in as_data(data.train_y).items()})


def _stored_config(model, opts: TrainOptions, config: Optional[RunConfig], dynamic: bool) -> Dict[str, Any]:
    """What ``config.json`` holds: the command line's config with these options, or one built here."""
    if config is None:
        return run_config(model, opts, dynamic)
    stored = RunConfig(**{**config.to_dict(), **opts.to_dict()})
    if stored.prior is None:
        stored.prior = model.names["prior"]  # record the prior actually used
    return stored.to_dict()


def _build_loop(model, est, data: TrainingData, opts: TrainOptions, dev: torch.device,
                folder: Optional[RunFolder], ranks, callback) -> tuple:
    """The loop and its parts, wired together."""
    optim = make_optimizer(OPTIMIZERS[opts.optimizer], model.parameters(), opts.lr, dev, capturable=dev.type == "cuda")
    total = Budget(opts.epochs, opts.samples, len(data.train), opts.batch_size).total_steps
    step = (build_step(opts.step, model, est, optim, dev, opts.clip_grad_norm, total) if ranks is None else
            distributed.step_for(opts.step, model, est, optim, ranks, opts.clip_grad_norm, data_size=len(data.train)))
    epochs = Epochs(data.train, opts.batch_size, data.dynamic, opts.seed, dev, as_data(data.train_y), ranks)
    counters = Counters()
    checkpoints = Checkpoints(model, optim, counters, epochs, dev, folder)
    test = None if data.test is None else TestSet(data.test, data.test_y, opts.seed, ranks, opts)
    loop = Loop(model, step, epochs, counters, checkpoints, DivergenceGuard(model, optim, ranks), opts,
                linear_warmup(opts.beta, opts.kl_warmup_epochs), test, _callbacks(callback, opts, data, folder),
                1 if ranks is None else ranks.world_size)
    return loop, checkpoints


def _callbacks(callback, opts: TrainOptions, data: TrainingData, folder: Optional[RunFolder]):
    """The user's callback, after TensorBoard logging when ``opts.tensorboard`` (rank 0 only)."""
    if not opts.tensorboard or folder is None:
        return callback
    from ..tblog import TensorBoardLogger  # imports tensorboard: only for runs that log to it

    logger = TensorBoardLogger(folder.path, data.test, data.test_y,
                               data.image_shape if data.test is not None else None, opts.seed)

    def both(epoch: int, model) -> None:
        logger(epoch, model)
        if callback is not None:
            callback(epoch, model)
    both.close = logger.close  # type: ignore[attr-defined]
    return both


def _curve(budget: Budget, opts: TrainOptions, data: TrainingData, test: Optional[TestSet], ranks,
           hook) -> Optional[Curve]:
    """The learning curve the options ask for (None: ``curve_points`` is 0)."""
    if not opts.curve_points:
        return None
    return Curve(budget.points(opts.curve_points), data.train, data.train_y, test, data.dynamic, opts.seed, ranks,
                 hook)


def _start(checkpoints: Checkpoints, out: Optional[str], resume: bool, ranks, opts: TrainOptions,
           budget: Budget) -> None:
    """Continue from the run folder's checkpoint, or seed a fresh run."""
    folder = checkpoints.folder
    state = checkpoint_to_resume(folder, resume, checkpoints.device, ranks)
    if state is not None:
        resume_from(checkpoints, state, out, budget)
        return
    if resume and folder is not None:
        warnings.warn(f"run {folder.path} stopped before its first checkpoint; starting it over",
                      PyroVAEWarning, stacklevel=3)
    pyro.set_rng_seed(opts.seed)

"""``fit()``: stochastic variational inference on a VAE, with metrics, checkpoints and resume.

The step is Pyro's own: the estimator's ``differentiable_loss`` of
``vae.model``/``vae.guide`` on one minibatch, then one torch optimizer step
over all parameters. This is what :class:`pyro.infer.SVI` does with a
``PyroOptim``, minus the host syncs (``.item()``), minus one optimizer object
per parameter tensor, and by default recorded once and replayed
(:mod:`pyrovae.fastpath`). The training set lives on the device as one tensor
and a minibatch is ``pyro.plate(..., subsample=idx)``: no DataLoader.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import pyro
import torch
from tqdm.auto import tqdm

from .config import RunConfig
from .data import validate_array
from .errors import PyroVAEError
from .estimators import ESTIMATORS, MissingKLError, estimator as make_estimator
from .evaluate import elbo_terms, evaluate_elbo, seeded
from .fastpath import STEPS, build_step, make_optimizer
from .klweight import linear_warmup
from .registry import Registry
from .runs import RunFolder

OPTIMIZERS: Registry[type] = Registry("optimizer")
OPTIMIZERS.register("adam", torch.optim.Adam)
OPTIMIZERS.register("adagrad", torch.optim.Adagrad)  # the paper's optimizer (section 5)


class DivergenceError(PyroVAEError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained VAE, one metrics record per epoch, and the summary."""

    vae: Any
    metrics: List[Dict[str, Any]] = field(default_factory=list)
    summary: Dict[str, Any] = field(default_factory=dict)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` picks CUDA when present; otherwise the named torch device, which must exist."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise PyroVAEError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PyroVAEError(f"device {device!r} requested but CUDA is not available here")
    return dev


def _prepare(vae, x, what: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    x = validate_array(x, name=what, keep_float=True).to(device=device, dtype=dtype)
    vae.check_data(x, what)
    return x


def _preflight(vae, est, x: torch.Tensor, labels: Dict[str, torch.Tensor]) -> None:
    """Run the loss once on two rows, on a private RNG stream, so model/estimator errors surface
    before any file is written."""
    with seeded(0, x.device):
        est.differentiable_loss(vae.model, vae.guide, x[:2], **{k: y[:2] for k, y in labels.items()})


def _rng_state(device: torch.device, data_rng: torch.Generator) -> Dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "data": data_rng.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: Dict[str, Any], device: torch.device, data_rng: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    data_rng.set_state(state["data"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


class _Trainer:
    """One training run: the loop state that a checkpoint captures."""

    #: Counters saved in every checkpoint; ``seconds`` is training time, ``wall_time`` adds evaluation.
    COUNTERS = ("epoch", "samples_seen", "seconds", "wall_time")

    def __init__(self, vae, est, optim, train, test, batch_size, dynamic, seed, folder, config, progress,
                 callback=None, labels=(None, None), kl_schedule=linear_warmup(), step="auto"):
        self.vae, self.est, self.optim = vae, est, optim
        self.step_fn = build_step(step, vae, est, optim, train.device)
        # Class labels of a conditional VAE, as model/guide keyword arguments (empty otherwise).
        self.labels, self.test_labels = ({} if labels[0] is None else {"y": labels[0]}), labels[1]
        self.kl_schedule = kl_schedule  # KL weight of each epoch (beta and warm-up)
        self.train, self.test, self.batch_size = train, test, batch_size
        self.dynamic, self.seed, self.progress = dynamic, seed, progress
        self.folder, self.config, self.callback = folder, config, callback
        self.device = train.device
        # Data order and binarization draw from their own stream, so every estimator sees the
        # same minibatches whatever noise it consumes (SPEC section 5: same data order).
        self.data_rng = torch.Generator(self.device).manual_seed(seed)
        self.epoch, self.samples_seen, self.seconds, self.wall_time = 0, 0, 0.0, 0.0
        self.metrics: List[Dict[str, Any]] = []

    # -- checkpoints -----------------------------------------------------------------------

    def state(self) -> Dict[str, Any]:
        counters = {k: getattr(self, k) for k in self.COUNTERS}
        return {"model": self.vae.state_dict(), "optimizer": self.optim.state_dict(),
                "rng": _rng_state(self.device, self.data_rng), **counters}

    def restore(self, state: Dict[str, Any]) -> None:
        lrs = [g["lr"] for g in self.optim.param_groups]
        self.vae.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optimizer"])
        for group, lr in zip(self.optim.param_groups, lrs):
            group["lr"] = lr  # the caller's learning rate wins over the saved one
        for key in self.COUNTERS:
            setattr(self, key, state[key])
        _set_rng_state(state["rng"], self.device, self.data_rng)
        self.metrics = self.folder.read_metrics()[: self.epoch]

    def save(self) -> None:
        if not self.folder.exists():
            # The folder appears with the first finished epoch: a run that never got that far
            # leaves nothing behind to block the next attempt.
            self.folder.create(self.config.to_dict())
        self.folder.save_checkpoint(self.state())
        self.folder.write_metrics(self.metrics)

    # -- the loop --------------------------------------------------------------------------

    def step(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """One SVI step on the minibatch ``x[idx]``; returns the detached loss (no host sync)."""
        return self.step_fn(x, idx, **self.labels)

    def run_epoch(self, bar) -> torch.Tensor:
        n = len(self.train)
        # Dynamic binarization: a fresh Bernoulli draw of every grey-level image each epoch.
        x = torch.bernoulli(self.train, generator=self.data_rng) if self.dynamic else self.train
        batches = torch.randperm(n, device=self.device, generator=self.data_rng).split(self.batch_size)
        losses = torch.empty(len(batches), device=self.device, dtype=self.train.dtype)
        every = max(1, len(batches) // 4)
        for i, idx in enumerate(batches):
            losses[i] = self.step(x, idx)
            bar.update(1)
            if i % every == every - 1:
                bar.set_postfix(epoch=self.epoch + 1, elbo=f"{-losses[i].item() / n:.2f}")
        return losses

    def check_finite(self, losses: torch.Tensor) -> None:
        bad = ~torch.isfinite(losses)
        if bool(bad.any()):
            step = int(bad.nonzero()[0])
            kept = (f"the checkpoint of epoch {self.epoch} is kept" if self.folder and self.epoch
                    else "no epoch had finished, so nothing was saved")
            raise DivergenceError(
                f"loss became {losses[step].item()} at epoch {self.epoch + 1}, step {step + 1} "
                f"(try a lower learning rate); {kept}")

    def end_epoch(self, losses: torch.Tensor, seconds: float) -> None:
        self.epoch += 1
        self.samples_seen += len(self.train)
        self.seconds += seconds
        record = {"epoch": self.epoch, "samples_seen": self.samples_seen,
                  "train_elbo": -float(losses.mean()) / len(self.train)}
        if self.test is not None:
            terms = elbo_terms(self.vae, self.test, seed=self.seed, labels=self.test_labels)
            record.update(test_elbo=terms["elbo"], test_kl=terms["kl"], test_recon=terms["recon"])
        record["seconds"] = self.seconds
        self.metrics.append(record)

    def run(self, epochs: int) -> None:
        steps = math.ceil(len(self.train) / self.batch_size)
        with warnings.catch_warnings(), tqdm(total=steps * (epochs - self.epoch), desc="train", unit="step",
                                             disable=not self.progress, dynamic_ncols=True) as bar:
            # Pyro warns on every NaN step; check_finite reports the first one once, by epoch and step.
            warnings.filterwarnings("ignore", message="Encountered NaN")
            while self.epoch < epochs:
                start = time.perf_counter()
                self.vae.kl_weight = self.kl_schedule(self.epoch)  # evaluation resets it to 1 itself
                losses = self.run_epoch(bar)
                self.check_finite(losses)  # reads the losses: a device sync, so the time below is complete
                self.end_epoch(losses, time.perf_counter() - start)
                self.wall_time += time.perf_counter() - start
                if self.folder is not None:
                    self.save()
                if self.callback is not None:
                    self.callback(self.epoch, self.vae)


def _check_positive(**values: Any) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PyroVAEError(f"{name} must be a positive integer, got {value!r}")


def fit(vae, train, test=None, *, estimator: str = "analytic", num_particles: int = 1, epochs: int = 10,
        batch_size: int = 100, lr: float = 1e-3, optimizer: str = "adam", device: str = "auto",
        seed: int = 0, dynamic_binarization: bool = False, out: Optional[str] = None,
        resume: bool = False, config: Optional[RunConfig] = None, progress: bool = True,
        callback: Optional[Callable[[int, Any], None]] = None, train_labels=None, test_labels=None,
        beta: float = 1.0, kl_warmup_epochs: int = 0, step: str = "auto") -> FitResult:
    """Train ``vae`` on ``train`` with SVI and the named ELBO estimator.

    Seed the initial weights yourself (``pyro.set_rng_seed``) before building
    the VAE; ``seed`` covers everything ``fit`` draws: data order,
    binarization and the estimator's noise.

    :param train: ``(N, x_dim)`` array or tensor; ``test`` likewise (optional).
    :param estimator: a name in :data:`pyrovae.estimators.ESTIMATORS`.
    :param num_particles: samples per data point per step, vectorized.
    :param dynamic_binarization: draw a fresh Bernoulli binarization of the
        grey-level ``train`` every epoch.
    :param out: run folder for ``config.json``, ``checkpoint.pt``,
        ``metrics.json`` and ``summary.json`` (nothing is written without it);
        it appears when the first epoch ends.
    :param resume: continue the run in ``out`` from its last checkpoint up to
        ``epochs``; on CPU with the same seed this equals an uninterrupted run.
    :param config: the :class:`~pyrovae.config.RunConfig` to store as
        ``config.json``; by default one is built from these arguments (with
        ``dataset=None``: the data came from Python).
    :param step: how a step runs (:data:`pyrovae.fastpath.STEPS`): ``"jit"`` records the loss once
        per minibatch shape, ``"cuda-graph"`` replays the whole step as a CUDA graph, ``"eager"``
        re-runs the Python every step; ``"auto"`` (default) is ``cuda-graph`` on CUDA with Adam,
        else ``jit``. All give the same parameters as plain Pyro SVI (up to rounding).
    :param callback: ``callback(epoch, vae)`` after every epoch (after its checkpoint), e.g. for
        diagnostics; it should leave the global RNG alone (see :func:`pyrovae.evaluate.seeded`).
    :param train_labels: integer class labels of the ``train`` rows (``test_labels`` of the
        ``test`` rows); needed by a conditional VAE, unused by an unconditional one.
    :param beta: weight of the KL in the training loss ``recon + beta * KL`` (seed 004).
    :param kl_warmup_epochs: anneal the weight linearly from 0 to ``beta`` over this many
        epochs, one value per epoch (see :func:`pyrovae.klweight.linear_warmup`). Reported test
        ELBOs are always the true bound (weight 1).
    :returns: a :class:`FitResult`; ELBOs are in nats per data point.
    """
    opt_cls = OPTIMIZERS[optimizer]
    if step != "auto":
        STEPS.get(step, "step")
    est = make_estimator(estimator, num_particles, max_plate_nesting=1)
    _check_positive(epochs=epochs, batch_size=batch_size)
    schedule = linear_warmup(beta, kl_warmup_epochs)
    if (beta != 1 or kl_warmup_epochs) and not ESTIMATORS[estimator].kl_weighting:
        raise PyroVAEError(f"estimator {estimator!r} has no separate KL term for beta or a KL warm-up to "
                           "weight; use mc, analytic, auto or stl")
    if not lr > 0:
        raise PyroVAEError(f"lr must be positive, got {lr!r}")
    dev = resolve_device(device)
    dtype = next(vae.parameters()).dtype
    train = _prepare(vae, train, "train data", dev, dtype)
    test = None if test is None else _prepare(vae, test, "test data", dev, dtype)
    labels = _labels(vae, train_labels, train, "train labels"), _labels(vae, test_labels, test, "test labels")
    if batch_size > len(train):
        raise PyroVAEError(f"batch size {batch_size} is larger than the {len(train)} training points")
    vae.to(dev)
    _preflight(vae, est, train, {} if labels[0] is None else {"y": labels[0]})

    folder = RunFolder(out) if out is not None else None
    config = config or _config_from_args(vae, estimator, num_particles, epochs, batch_size, lr, optimizer,
                                         device, seed, dynamic_binarization, beta, kl_warmup_epochs)
    if config.prior is None:
        config = dataclasses.replace(config, prior=vae.names["prior"])  # record the prior actually used
    optim = make_optimizer(opt_cls, vae.parameters(), lr, dev, capturable=dev.type == "cuda")
    trainer = _Trainer(vae, est, optim, train, test, batch_size, dynamic_binarization, seed, folder, config,
                       progress, callback, labels, schedule, step)
    if resume:
        _resume(trainer, folder, epochs, dev)
    else:
        if folder is not None:
            folder.check_new()
        pyro.set_rng_seed(seed)

    # The param store scope keeps the user's store free of our names; the trainer sets the KL
    # weight per epoch and kl_weighted restores the VAE's own weight when training ends.
    with pyro.get_param_store().scope(), vae.kl_weighted(vae.kl_weight):
        trainer.run(epochs)
    summary = _summary(trainer, estimator, dev)
    if folder is not None:
        folder.write_config(config.to_dict())  # records the new epoch count after a resume
        summary = folder.update_summary(**summary)
    return FitResult(vae, trainer.metrics, summary)


def _resume(trainer: _Trainer, folder: Optional[RunFolder], epochs: int, device: torch.device) -> None:
    if folder is None:
        raise PyroVAEError("resume needs a run folder (out=...)")
    trainer.restore(folder.require().load_checkpoint(device))
    if epochs < trainer.epoch:
        raise PyroVAEError(f"run {folder.path} already has {trainer.epoch} epochs; ask for at least that many")


def _labels(vae, labels, x: Optional[torch.Tensor], what: str) -> Optional[torch.Tensor]:
    """Checked labels on ``x``'s device for a conditional VAE; None for an unconditional one."""
    if x is None:
        return None
    y = vae.check_labels(labels, len(x), what)
    return None if y is None else y.to(x.device)


def _config_from_args(vae, estimator, num_particles, epochs, batch_size, lr, optimizer, device, seed,
                      dynamic, beta, kl_warmup_epochs) -> RunConfig:
    names = vae.names
    return RunConfig(dataset=None, binarize="dynamic" if dynamic else "none", latent_dim=vae.z_dim,
                     hidden=vae.hidden, activation=names["activation"], posterior=names["posterior"],
                     prior=names["prior"], likelihood=names["likelihood"], estimator=estimator,
                     particles=num_particles, epochs=epochs, batch_size=batch_size, lr=lr,
                     optimizer=optimizer, device=device, seed=seed, conditional=names["conditional"],
                     num_classes=vae.num_classes, beta=float(beta), kl_warmup_epochs=kl_warmup_epochs)


def final_elbos(vae, test: torch.Tensor, seed: int, labels=None) -> Dict[str, float]:
    """The test ELBO under ``mc`` and, where every KL has a closed form, ``analytic`` (at KL weight 1)."""
    out = {"mc": evaluate_elbo(vae, test, "mc", seed=seed, labels=labels)}
    try:
        out["analytic"] = evaluate_elbo(vae, test, "analytic", seed=seed, labels=labels)
    except MissingKLError:
        pass
    return out


def _summary(trainer: _Trainer, estimator: str, device: torch.device) -> Dict[str, Any]:
    summary: Dict[str, Any] = {
        "epochs": trainer.epoch, "samples_seen": trainer.samples_seen, "estimator": estimator,
        "kl_routes": getattr(trainer.est, "kl_routes", {}), "device": str(device),
        "torch": torch.__version__, "pyro": pyro.__version__, "python": platform.python_version(),
        "train_seconds": trainer.seconds, "wall_time": trainer.wall_time,
    }
    if trainer.test is not None:
        summary["test_elbo"] = final_elbos(trainer.vae, trainer.test, trainer.seed, trainer.test_labels)
    return summary

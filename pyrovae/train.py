"""``fit()``: stochastic variational inference on a VAE, with metrics, checkpoints and resume.

The step is Pyro's own: the estimator's ``differentiable_loss`` of
``vae.model``/``vae.guide`` on one minibatch, then one torch optimizer step
over all parameters. This is what :class:`pyro.infer.SVI` does with a
``PyroOptim``, minus the host syncs (``.item()``), minus one optimizer object
per parameter tensor, and by default recorded once and replayed
(:mod:`pyrovae.fastpath`). The training set lives on the device as one tensor
and a minibatch is ``pyro.plate(..., subsample=idx)``: no DataLoader.

Reliability: every input is checked before any work starts
(:mod:`pyrovae.validation`); a checkpoint is written at the end of every epoch
and, with ``checkpoint_every``, every N steps, holding everything needed to
continue bit for bit on CPU (weights, optimizer, RNG states, the position in
the epoch); a NaN or infinity stops the run at the next checkpoint, before
anything non-finite is saved, and :mod:`pyrovae.divergence` names the step
and the term that went bad.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import platform
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import pyro
import torch
from tqdm.auto import tqdm

from . import distributed
from .config import RunConfig
from .divergence import ADVICE, DivergenceError, all_finite, explain_step, optimizer_tensors
from .errors import PyroVAEError, PyroVAEWarning
from .estimators import ESTIMATORS, MissingKLError, estimator as make_estimator
from .evaluate import elbo_terms, evaluate_elbo, seeded
from .fastpath import STEPS, build_step, make_optimizer
from .klweight import linear_warmup
from .registry import Registry
from .runs import RunFolder
from .validation import check_batch_size, check_training, one_line, validate_array, validate_data

OPTIMIZERS: Registry[type] = Registry("optimizer")
OPTIMIZERS.register("adam", torch.optim.Adam)
OPTIMIZERS.register("adagrad", torch.optim.Adagrad)  # the paper's optimizer (section 5)


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
    # Checked again in the model's dtype: a float64 value may overflow, or round onto a support
    # boundary (1 - 1e-9 becomes 1.0 in float32, outside the Beta likelihood's (0, 1)).
    return validate_data(x, x_dim=vae.x_dim, likelihood=vae.likelihood_spec, name=what, keep_float=True)


def _preflight(vae, est, x: torch.Tensor, labels: Dict[str, torch.Tensor], device: torch.device) -> None:
    """Run the loss once on two rows, on a private RNG stream, so model/estimator errors surface
    before any file is written."""
    with seeded(0, device):
        est.differentiable_loss(vae.model, vae.guide, x[:2].to(device),
                                **{k: y[:2].to(device) for k, y in labels.items()})


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
                 callback=None, labels=(None, None), kl_schedule=linear_warmup(), step="auto",
                 clip_grad_norm=None, checkpoint_every=None, ranks=None, device=None):
        self.vae, self.est, self.optim = vae, est, optim
        self.device = device or train.device  # where training runs (a rank's train rows may wait on the host)
        self.ranks = ranks  # a data-parallel run's ranks (None in one process)
        self.step_fn = (build_step(step, vae, est, optim, self.device, clip_grad_norm) if ranks is None else
                        distributed.step_for(step, vae, est, optim, ranks, clip_grad_norm, data_size=len(train)))
        # Class labels of a conditional VAE, as model/guide keyword arguments (empty otherwise).
        self.labels, self.test_labels = ({} if labels[0] is None else {"y": labels[0]}), labels[1]
        self.all_labels = self.labels  # a rank that holds a shard takes its rows' labels every epoch
        self.kl_schedule = kl_schedule  # KL weight of each epoch (beta and warm-up)
        self.train, self.test, self.batch_size = train, test, batch_size
        self.dynamic, self.seed, self.progress = dynamic, seed, progress
        self.folder, self.config, self.callback = folder, config, callback
        self.checkpoint_every = checkpoint_every  # clipping belongs to the step (fastpath)
        self.params = list(vae.parameters())
        # Data order and binarization draw from their own stream, so every estimator sees the
        # same minibatches whatever noise it consumes, and the comparison is fair.
        self.data_rng = torch.Generator(self.device).manual_seed(seed)
        self.epoch, self.samples_seen, self.seconds, self.wall_time = 0, 0, 0.0, 0.0
        self.metrics: List[Dict[str, Any]] = []
        # Position inside the epoch in progress, for checkpoints every N steps: the steps done,
        # their losses, their seconds, and the data RNG state the epoch was drawn from.
        self.step_in_epoch, self.epoch_losses, self.epoch_seconds = 0, None, 0.0
        self.epoch_rng: Optional[torch.Tensor] = None
        self.clock = time.perf_counter()  # start of the current stretch of the epoch
        self.last_saved: Optional[Tuple[int, int]] = None  # (epoch, step) of the newest checkpoint on disk
        self.good: Optional[bytes] = None  # the last state that passed check_finite, serialized

    # -- checkpoints -----------------------------------------------------------------------

    def state(self) -> Dict[str, Any]:
        counters = {k: getattr(self, k) for k in self.COUNTERS}
        rng = _rng_state(self.device, self.data_rng)
        mid = self.step_in_epoch > 0
        if mid:
            rng["data"] = self.epoch_rng  # redraws this epoch's order and binarization on resume
        return {"model": self.vae.state_dict(), "optimizer": self.optim.state_dict(), "rng": rng, **counters,
                "metrics": list(self.metrics), "step": self.step_in_epoch,
                "epoch_losses": self.epoch_losses if mid else torch.empty(0),
                "epoch_seconds": self.epoch_seconds + time.perf_counter() - self.clock if mid else 0.0}

    def restore(self, state: Dict[str, Any]) -> None:
        lrs = [g["lr"] for g in self.optim.param_groups]
        self.vae.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optimizer"])
        for group, lr in zip(self.optim.param_groups, lrs):
            group["lr"] = lr  # the caller's learning rate wins over the saved one
        for key in self.COUNTERS:
            setattr(self, key, state[key])
        _set_rng_state(state["rng"], self.device, self.data_rng)
        # Checkpoints from before mid-epoch saving hold no step, losses or metrics.
        self.step_in_epoch = int(state.get("step", 0))
        self.epoch_losses = state["epoch_losses"].to(self.device) if self.step_in_epoch else None
        self.epoch_seconds = float(state.get("epoch_seconds", 0.0))
        self.epoch_rng = state["rng"]["data"]
        self.clock = time.perf_counter()
        self.metrics = list(state["metrics"]) if "metrics" in state else self.folder.read_metrics()[: self.epoch]

    def save(self) -> None:
        """Checkpoint (when there is a run folder) and keep the state as the last good one."""
        state = self.state()
        if self.folder is not None:
            # The checkpoint carries the metrics too, so a kill between these two writes loses nothing.
            self.folder.save_checkpoint(state)
            self.folder.write_metrics(self.metrics)
            self.last_saved = (self.epoch, self.step_in_epoch)
        self.keep_good(state)

    def keep_good(self, state: Dict[str, Any]) -> None:
        """Remember ``state`` as the last good one: serialized, so a deep copy off the device."""
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.good = buffer.getvalue()

    def load_good(self) -> None:
        """Return to the last state that passed :meth:`check_finite`."""
        self.restore(torch.load(io.BytesIO(self.good), map_location=self.device, weights_only=True))

    # -- the loop --------------------------------------------------------------------------

    def step(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """One SVI step on the minibatch ``x[idx]``; returns the detached loss (no host sync)."""
        return self.step_fn(x, idx, **self.labels)

    def draw_epoch(self) -> Tuple[torch.Tensor, Tuple[torch.Tensor, ...]]:
        """The epoch's training rows and minibatch indices, drawn from the data RNG (remembered first)."""
        self.epoch_rng = self.data_rng.get_state()
        # Dynamic binarization: a fresh Bernoulli draw of every grey-level image each epoch.
        x = torch.bernoulli(self.train, generator=self.data_rng) if self.dynamic else self.train
        batches = torch.randperm(len(self.train), device=self.device, generator=self.data_rng).split(self.batch_size)
        if self.ranks is not None and not self.dynamic:  # a rank holds its shard only
            return self.shard_epoch(x, batches)
        return x, batches

    def shard_epoch(self, x: torch.Tensor, batches: Tuple[torch.Tensor, ...]
                    ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, ...]]:
        """A data-parallel rank's part of the epoch: its shard of every minibatch, moved to its device.

        ``x`` (every row, on the host) is the single process's epoch, drawn identically on every
        rank; the rank copies only its ``~N/ranks`` rows to the device. Each returned index
        tensor keeps the global minibatch layout (``len`` is the global batch, as the step's
        ``N/M`` needs): the rank's own part points at its rows on the device, the other ranks'
        parts are ``-1`` and never read (:meth:`~pyrovae.distributed.DistributedStep.loss`).
        """
        parts = [self.ranks.shard(b) for b in batches]
        rows = torch.cat(parts).to(x.device)
        self.labels = {k: y[rows].to(self.device) for k, y in self.all_labels.items()}
        local, start = [], 0
        for batch, part in zip(batches, parts):
            idx = torch.full_like(batch, -1)
            idx[self.ranks.rows(len(batch))] = torch.arange(start, start + len(part), device=batch.device)
            local.append(idx)
            start += len(part)
        return x[rows].to(self.device), tuple(local)

    def run_epoch(self, bar) -> torch.Tensor:
        n = len(self.train)
        x, batches = self.draw_epoch()
        losses = torch.empty(len(batches), device=self.device, dtype=self.train.dtype)
        start = self.step_in_epoch  # > 0 when resuming from a checkpoint taken inside this epoch
        if start:
            losses[:start] = self.epoch_losses
        summed = start  # losses[:summed] are whole-minibatch losses (summed over ranks)
        every = max(1, len(batches) // 4)
        world = 1 if self.ranks is None else self.ranks.world_size
        for i in range(start, len(batches)):
            losses[i] = self.step(x, batches[i])
            bar.update(1)
            if i % every == every - 1:  # a rank's shard loss times the ranks: a display estimate
                bar.set_postfix(epoch=self.epoch + 1, elbo=f"{-losses[i].item() * world / n:.2f}")
            if self.checkpoint_due(i + 1, len(batches)):
                summed = self.sum_over_ranks(losses, summed, i + 1)
                self.check_finite(losses[: i + 1])
                self.step_in_epoch, self.epoch_losses = i + 1, losses[: i + 1].clone()
                self.save()
        self.sum_over_ranks(losses, summed, len(batches))
        return losses

    def sum_over_ranks(self, losses: torch.Tensor, start: int, stop: int) -> int:
        """Turn the shard losses ``losses[start:stop]`` into minibatch losses (a no-op in one process)."""
        if self.ranks is not None and stop > start:
            self.ranks.sum_(losses[start:stop], "the loss all-reduce")
        return stop

    def checkpoint_due(self, done: int, steps: int) -> bool:
        """Whether ``checkpoint_every`` asks for a checkpoint after ``done`` steps of this epoch
        (counted over the whole run); the end of the epoch has its own."""
        return (self.checkpoint_every is not None and done < steps
                and (self.epoch * steps + done) % self.checkpoint_every == 0)

    def check_finite(self, losses: torch.Tensor) -> None:
        """Stop, before anything is saved, if a loss, parameter or optimizer state is NaN or infinite.

        One host sync for all of them; the replay that names the bad step runs only on failure.
        """
        if not all_finite([losses, *self.params, *optimizer_tensors(self.optim)]):
            raise self.diverged()

    def diverged(self) -> DivergenceError:
        """Replay from the last good state, checking every step, and explain the first bad one."""
        self.load_good()
        x, batches = self.draw_epoch()
        for i in range(self.step_in_epoch, len(batches)):
            before = {k: v.clone() for k, v in self.vae.state_dict().items()}
            rng = _rng_state(self.device, self.data_rng)
            loss, error = None, None
            try:
                loss = self.step(x, batches[i])
            except (ValueError, RuntimeError) as e:  # e.g. a distribution refusing NaN parameters
                error = e
            if error is None and all_finite([loss, *self.params, *optimizer_tensors(self.optim)]):
                continue
            own = batches[i] if self.ranks is None else self.ranks.shard(batches[i])  # this rank's rows
            what, why = explain_step(self.vae, self.optim, x, own, loss, error, before, rng, **self.labels)
            return DivergenceError(f"{what} at epoch {self.epoch + 1}, step {i + 1}: {why}; {ADVICE}; "
                                   f"{self.kept()}")
        return DivergenceError(f"training became non-finite in epoch {self.epoch + 1}, but a replay from the "
                               f"last good state did not reproduce it (a non-deterministic device?); {ADVICE}; "
                               f"{self.kept()}")

    def kept(self) -> str:
        """What a divergence leaves on disk."""
        if self.folder is None:
            return "nothing was saved (no run folder)"
        if self.last_saved is None:
            return "no checkpoint had been written yet, so nothing was saved"
        epoch, step = self.last_saved
        return f"the checkpoint of epoch {epoch} is kept" if step == 0 else \
            f"the checkpoint at epoch {epoch + 1}, step {step} is kept"

    def end_epoch(self, losses: torch.Tensor, seconds: float) -> None:
        self.epoch += 1
        self.samples_seen += len(self.train)
        self.seconds += seconds
        record = {"epoch": self.epoch, "samples_seen": self.samples_seen,
                  "train_elbo": -float(losses.mean()) / len(self.train)}
        if self.test is not None:
            terms = elbo_terms(self.vae, self.test, seed=self.seed, labels=self.test_labels, ranks=self.ranks)
            record.update(test_elbo=terms["elbo"], test_kl=terms["kl"], test_recon=terms["recon"])
        record["seconds"] = self.seconds
        self.metrics.append(record)

    def run(self, epochs: int) -> None:
        steps = math.ceil(len(self.train) / self.batch_size)
        quiet = not self.progress or (self.ranks is not None and not self.ranks.main)  # one bar per run
        with warnings.catch_warnings(), tqdm(total=steps * (epochs - self.epoch), desc="train", unit="step",
                                             disable=quiet, dynamic_ncols=True) as bar:
            # Pyro warns on every NaN step; check_finite reports the first one once, by epoch and step.
            warnings.filterwarnings("ignore", message="Encountered NaN")
            self.keep_good(self.state())  # where a divergence before the first checkpoint is replayed from
            while self.epoch < epochs:
                start = self.clock = time.perf_counter()
                self.vae.kl_weight = self.kl_schedule(self.epoch)  # evaluation resets it to 1 itself
                losses = self.guarded_epoch(bar)
                self.check_finite(losses)  # reads the losses: a device sync, so the time below is complete
                earlier = self.epoch_seconds  # an epoch resumed from inside: its time before the interruption
                self.end_epoch(losses, earlier + time.perf_counter() - start)
                self.wall_time += earlier + time.perf_counter() - start
                self.step_in_epoch, self.epoch_losses, self.epoch_seconds = 0, None, 0.0
                self.save()
                if self.callback is not None:
                    self.callback(self.epoch, self.vae)

    def guarded_epoch(self, bar) -> torch.Tensor:
        """:meth:`run_epoch`, turning an error raised by non-finite parameters into a divergence."""
        try:
            return self.run_epoch(bar)
        except PyroVAEError:
            raise
        except (ValueError, RuntimeError):
            if all_finite([*self.params, *optimizer_tensors(self.optim)]):
                raise
            raise self.diverged() from None


def fit(vae, train, test=None, *, estimator: str = "analytic", num_particles: int = 1, epochs: int = 10,
        batch_size: int = 100, lr: float = 1e-3, optimizer: str = "adam", device: str = "auto",
        seed: int = 0, dynamic_binarization: bool = False, out: Optional[str] = None,
        resume: bool = False, config: Optional[RunConfig] = None, progress: bool = True,
        callback: Optional[Callable[[int, Any], None]] = None, train_labels=None, test_labels=None,
        beta: float = 1.0, kl_warmup_epochs: int = 0, step: str = "auto", clip_grad_norm: Optional[float] = None,
        checkpoint_every: Optional[int] = None, ranks: Optional[distributed.Ranks] = None) -> FitResult:
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
        ``metrics.json`` and ``summary.json`` (nothing is written without it).
        It is locked (``run.lock``) while ``fit`` runs; if ``fit`` fails before
        its first checkpoint, it is removed again.
    :param resume: continue the run in ``out`` from its last checkpoint up to
        ``epochs``; on CPU with the same seed this equals an uninterrupted run.
        A folder whose run stopped before its first checkpoint starts over.
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
    :param beta: weight of the KL in the training loss ``recon + beta * KL`` (beta-VAE, Higgins et al. 2017).
    :param kl_warmup_epochs: anneal the weight linearly from 0 to ``beta`` over this many
        epochs, one value per epoch (see :func:`pyrovae.klweight.linear_warmup`). Reported test
        ELBOs are always the true bound (weight 1).
    :param clip_grad_norm: clip the norm of all gradients together to this value before each update.
    :param checkpoint_every: also checkpoint (and check for NaN) every this many steps, not only at
        the end of every epoch; a run resumed from inside an epoch still repeats an uninterrupted one.
    :param ranks: this process's place in a data-parallel run, from
        :func:`pyrovae.distributed.init_from_env` under ``torchrun`` (None: one process). Each
        rank then trains on its shard of every global batch of ``batch_size`` rows, and rank 0
        alone writes ``out`` (docs/distributed.md).
    :returns: a :class:`FitResult`; ELBOs are in nats per data point.
    :raises PyroVAEError: for bad input, before anything is written;
        :class:`~pyrovae.divergence.DivergenceError` when training becomes non-finite.
    """
    opt_cls = OPTIMIZERS[optimizer]
    if step != "auto":
        STEPS.get(step, "step")
    est = make_estimator(estimator, num_particles, max_plate_nesting=1)
    check_training(epochs=epochs, batch_size=batch_size, lr=lr, num_particles=num_particles,
                   clip_grad_norm=clip_grad_norm, checkpoint_every=checkpoint_every)
    schedule = linear_warmup(beta, kl_warmup_epochs)
    if (beta != 1 or kl_warmup_epochs) and not ESTIMATORS[estimator].kl_weighting:
        raise PyroVAEError(f"estimator {estimator!r} has no separate KL term for beta or a KL warm-up to "
                           "weight; use mc, analytic, auto or stl")
    dev = resolve_device(device)
    dtype = next(vae.parameters()).dtype
    # A data-parallel rank keeps the training rows on the host and moves only its shard of each
    # epoch to its device. Dynamic binarization redraws every row on the device, as one process
    # does, so there every rank holds the whole set (docs/distributed.md).
    hold = torch.device("cpu") if ranks is not None and not dynamic_binarization else dev
    train = _prepare(vae, train, "train data", hold, dtype)
    test = None if test is None else _prepare(vae, test, "test data", dev, dtype)
    labels = _labels(vae, train_labels, train, "train labels"), _labels(vae, test_labels, test, "test labels")
    check_batch_size(batch_size, len(train), 1 if ranks is None else ranks.world_size)
    vae.to(dev)
    _preflight(vae, est, train, {} if labels[0] is None else {"y": labels[0]}, dev)
    folder = _check_folder(out, resume, ranks)
    if ranks is not None:
        ranks.copy_from_main(vae.state_dict().values())  # as DDP does: every rank starts from rank 0's weights

    config = config or _config_from_args(vae, estimator, num_particles, epochs, batch_size, lr, optimizer,
                                         device, seed, dynamic_binarization, beta, kl_warmup_epochs,
                                         clip_grad_norm, checkpoint_every)
    if config.prior is None:
        config = dataclasses.replace(config, prior=vae.names["prior"])  # record the prior actually used
    optim = make_optimizer(opt_cls, vae.parameters(), lr, dev, capturable=dev.type == "cuda")
    trainer = _Trainer(vae, est, optim, train, test, batch_size, dynamic_binarization, seed, folder, config,
                       progress, callback, labels, schedule, step, clip_grad_norm, checkpoint_every, ranks, dev)
    session = folder.session(config.to_dict(), fresh=not resume) if folder else contextlib.nullcontext()
    # The param store scope keeps the user's store free of our names; the trainer sets the KL
    # weight per epoch and kl_weighted restores the VAE's own weight when training ends.
    with session, pyro.get_param_store().scope(), vae.kl_weighted(vae.kl_weight):
        state = _checkpoint_to_resume(folder, resume, dev, ranks)
        if state is not None:
            _resume(trainer, state, out, epochs)
        else:
            if resume and folder is not None:
                warnings.warn(f"run {folder.path} stopped before its first checkpoint; starting it over",
                              PyroVAEWarning, stacklevel=2)
            pyro.set_rng_seed(seed)
        trainer.run(epochs)
        summary = _summary(trainer, estimator, dev)
        if folder is not None:
            folder.write_metrics(trainer.metrics)
            folder.write_config(config.to_dict())  # records the new epoch count after a resume
            summary = folder.update_summary(**summary)
    return FitResult(vae, trainer.metrics, summary)


def _check_folder(out: Optional[str], resume: bool, ranks=None) -> Optional[RunFolder]:
    """The run folder, if any, after the checks that need no lock: not in use, and new or resumable.

    In a data-parallel run rank 0 checks it (every rank raises what it finds) and only rank 0
    gets it: the other ranks write nothing.
    """
    if ranks is not None:
        found = ranks.from_main(lambda: _check_folder(out, resume) is not None, "the run-folder checks")
        return RunFolder(out) if found and ranks.main else None
    if out is None:
        if resume:
            raise PyroVAEError("resume needs a run folder (out=...)")
        return None
    folder = RunFolder(out)
    folder.check_free()
    if resume:
        folder.require(checkpoint=False)
    else:
        folder.check_new()
    return folder


def _checkpoint_to_resume(folder: Optional[RunFolder], resume: bool, device: torch.device,
                          ranks) -> Optional[Dict[str, Any]]:
    """The checkpoint a resumed run continues from (None: start afresh); rank 0 reads it for every rank."""
    if ranks is None:
        return folder.load_checkpoint(device) if resume and folder.has_checkpoint() else None
    # Sent to the other ranks from the CPU; restore() moves every part to the rank's own device.
    return ranks.from_main(lambda: folder.load_checkpoint("cpu") if resume and folder.has_checkpoint() else None,
                           "loading the checkpoint")


def _resume(trainer: _Trainer, state: Dict[str, Any], path: str, epochs: int) -> None:
    path = RunFolder(path).path
    try:
        trainer.restore(state)
    except (RuntimeError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise PyroVAEError(f"checkpoint of {path} does not match this run ({one_line(e)})") from None
    trainer.last_saved = (trainer.epoch, trainer.step_in_epoch)
    steps = math.ceil(len(trainer.train) / trainer.batch_size)
    if trainer.step_in_epoch >= steps:
        raise PyroVAEError(f"checkpoint of {path} stopped at step {trainer.step_in_epoch} of an epoch, but "
                           f"this run has {steps} steps per epoch (other data or batch size?)")
    begun = f" and part of epoch {trainer.epoch + 1}" if trainer.step_in_epoch else ""
    needed = trainer.epoch + (trainer.step_in_epoch > 0)  # an epoch begun must be finished
    if epochs < needed:
        raise PyroVAEError(f"run {path} already has {trainer.epoch} epochs{begun}; "
                           f"ask for at least {needed}")


def _labels(vae, labels, x: Optional[torch.Tensor], what: str) -> Optional[torch.Tensor]:
    """Checked labels on ``x``'s device for a conditional VAE; None for an unconditional one."""
    if x is None:
        return None
    y = vae.check_labels(labels, len(x), what)
    return None if y is None else y.to(x.device)


def _config_from_args(vae, estimator, num_particles, epochs, batch_size, lr, optimizer, device, seed,
                      dynamic, beta, kl_warmup_epochs, clip_grad_norm, checkpoint_every) -> RunConfig:
    names = vae.names
    return RunConfig(dataset=None, binarize="dynamic" if dynamic else "none", latent_dim=vae.z_dim,
                     hidden=vae.hidden, activation=names["activation"], posterior=names["posterior"],
                     prior=names["prior"], likelihood=names["likelihood"], estimator=estimator,
                     particles=num_particles, epochs=epochs, batch_size=batch_size, lr=lr,
                     optimizer=optimizer, device=device, seed=seed, conditional=names["conditional"],
                     num_classes=vae.num_classes, beta=float(beta), kl_warmup_epochs=kl_warmup_epochs,
                     clip_grad_norm=clip_grad_norm, checkpoint_every=checkpoint_every)


def final_elbos(vae, test: torch.Tensor, seed: int, labels=None, ranks=None) -> Dict[str, float]:
    """The test ELBO under ``mc`` and, where every KL has a closed form, ``analytic`` (at KL weight 1)."""
    out = {"mc": evaluate_elbo(vae, test, "mc", seed=seed, labels=labels, ranks=ranks)}
    try:
        out["analytic"] = evaluate_elbo(vae, test, "analytic", seed=seed, labels=labels, ranks=ranks)
    except MissingKLError:
        pass
    return out


def _summary(trainer: _Trainer, estimator: str, device: torch.device) -> Dict[str, Any]:
    summary: Dict[str, Any] = {
        "epochs": trainer.epoch, "samples_seen": trainer.samples_seen, "estimator": estimator,
        "kl_routes": getattr(trainer.est, "kl_routes", {}), "device": str(device),
        "torch": torch.__version__, "pyro": pyro.__version__, "python": platform.python_version(),
        "train_seconds": trainer.seconds, "wall_time": trainer.wall_time,
        "world_size": 1 if trainer.ranks is None else trainer.ranks.world_size,
    }
    if trainer.test is not None:
        summary["test_elbo"] = final_elbos(trainer.vae, trainer.test, trainer.seed, trainer.test_labels,
                                           trainer.ranks)
    return summary

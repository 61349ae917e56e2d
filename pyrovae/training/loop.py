"""The epoch loop: steps, the checks and checkpoints between them, and the record of every epoch."""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Dict, NoReturn, Optional

import torch

from ..errors import PyroVAEError
from ..estimators import ESTIMATORS
from ..evaluate import elbo_terms, evaluate_elbo
from ..options import TrainOptions
from ..progress import progress_bar
from .budget import Budget
from .checkpointing import Checkpoints
from .counters import Counters
from .epochs import Epochs
from .guard import DivergenceGuard
from .protocol import set_kl_weight


class TestSet:
    """The held-out rows evaluated after every epoch, in nats per point: the true ELBO and its two
    terms, and, when training optimizes another bound (IWAE), that bound too, so that the train
    and test curves of the same bound can be compared."""

    def __init__(self, x: torch.Tensor, labels: Optional[torch.Tensor], seed: int, ranks=None,
                 options: Optional[TrainOptions] = None) -> None:
        self.x, self.labels, self.seed, self.ranks = x, labels, seed, ranks
        self.options = options or TrainOptions()

    def record(self, model) -> Dict[str, float]:
        """``test_elbo``, ``test_kl``, ``test_recon`` (and ``test_iwae``) of ``model``, on their own RNG stream."""
        terms = elbo_terms(model, self.x, seed=self.seed, labels=self.labels, ranks=self.ranks)
        record = {"test_elbo": terms["elbo"], "test_kl": terms["kl"], "test_recon": terms["recon"]}
        bound = ESTIMATORS[self.options.estimator].bound
        if bound != "elbo":
            record[f"test_{bound}"] = evaluate_elbo(model, self.x, self.options.estimator, self.options.num_particles,
                                                    seed=self.seed, labels=self.labels, ranks=self.ranks)
        return record


class Loop:
    """Runs epochs until the requested total, checkpointing and checking as the options ask.

    :param step: the training step (:mod:`pyrovae.fastpath` or a data-parallel one):
        ``step(x, idx, **labels)`` returns the minibatch loss as a device tensor.
    :param test: evaluated after every epoch (None: no test records).
    :param kl_schedule: the KL weight of each epoch (beta and the warm-up).
    :param callback: ``callback(epoch, model)`` after every epoch's checkpoint.
    :param curve: records train and test ELBO at its points (:class:`~pyrovae.training.curve.Curve`),
        each followed by a checkpoint; None: no curve.
    """

    def __init__(self, model, step: Callable[..., torch.Tensor], epochs: Epochs, counters: Counters,
                 checkpoints: Checkpoints, guard: DivergenceGuard, options: TrainOptions,
                 kl_schedule: Callable[[int], float], test: Optional[TestSet] = None,
                 callback: Optional[Callable[[int, Any], None]] = None, world_size: int = 1, curve=None) -> None:
        self.model, self.step, self.epochs, self.counters = model, step, epochs, counters
        self.checkpoints, self.guard, self.options = checkpoints, guard, options
        self.kl_schedule, self.test, self.callback, self.world_size = kl_schedule, test, callback, world_size
        self.curve, self.budget = curve, None
        # Start of the current stretch of the epoch's training time: moved on by the time curve
        # points take, so that the time per step is the step's.
        self.clock = time.perf_counter()

    @property
    def done_steps(self) -> int:
        """Global steps trained so far."""
        return self.counters.epoch * self.epochs.steps + self.counters.step

    def run(self, budget: Budget, progress: bool) -> None:
        """Train until ``budget`` is spent (from where the counters stand)."""
        self.budget = budget
        total = budget.total_steps - self.done_steps
        with warnings.catch_warnings(), progress_bar(total, "train", progress) as bar:
            # Pyro warns on every NaN step; the guard reports the first one once, by epoch and step.
            warnings.filterwarnings("ignore", message="Encountered NaN")
            self.checkpoints.keep_good(self.checkpoints.state())  # where an early divergence is replayed from
            while self.done_steps < budget.total_steps:
                self.one_epoch(bar)

    def one_epoch(self, bar) -> None:
        """Train one epoch (or its rest, after a resume from inside it), record it and checkpoint."""
        start = self.clock = time.perf_counter()
        set_kl_weight(self.model, self.kl_schedule(self.counters.epoch))  # evaluation uses weight 1 itself
        stop = self.budget.steps_in(self.counters.epoch)
        losses = self.guarded_epoch(bar, stop)
        if stop < self.epochs.steps:  # the budget ends inside this epoch, checkpointed where it stopped
            self.counters.epoch_seconds += time.perf_counter() - self.clock  # in the summary's training time
            self.counters.wall_time += time.perf_counter() - start
            return
        self.check(losses)  # reads the losses: a device sync, so the time below is complete
        earlier = self.counters.epoch_seconds  # a resumed epoch: its time before the interruption
        train_time = earlier + time.perf_counter() - self.clock
        bound = ESTIMATORS[self.options.estimator].bound  # the bound the loss estimates: train_elbo, train_iwae
        record = {f"train_{bound}": -float(losses.mean()) / self.epochs.rows}
        self.counters.finish_epoch(self.epochs.rows, train_time, {**record, **self._test_record()})
        self.counters.wall_time += earlier + time.perf_counter() - start
        self.counters.start_epoch()
        self.checkpoints.save()
        if self.callback is not None:
            self.callback(self.counters.epoch, self.model)

    def _test_record(self) -> Dict[str, float]:
        return {} if self.test is None else self.test.record(self.model)

    def run_epoch(self, bar, stop: int) -> torch.Tensor:
        """The steps of one epoch up to ``stop``; returns their losses (summed over ranks)."""
        x, batches, labels = self.epochs.draw()
        losses = torch.empty(len(batches), device=self.epochs.device, dtype=self.epochs.train.dtype)
        start = summed = self.counters.step  # > 0 when resuming from inside this epoch
        if start:
            losses[:start] = self.counters.epoch_losses  # losses[:summed] are summed over ranks already
        every = max(1, len(batches) // 4)
        for i in range(start, stop):
            losses[i] = self.take_step(x, batches[i], **labels)
            bar.update(1)
            if i % every == every - 1:  # a rank's shard loss times the ranks: a display estimate
                bar.set_postfix(epoch=self.counters.epoch + 1,
                                elbo=f"{-losses[i].item() * self.world_size / self.epochs.rows:.2f}")
            point = self.record_point(i + 1)
            if (point or i + 1 == stop or self.checkpoint_due(i + 1, len(batches))) and i + 1 < len(batches):
                summed = self.sum_over_ranks(losses, summed, i + 1)
                self.check(losses[: i + 1])
                self.counters.step, self.counters.epoch_losses = i + 1, losses[: i + 1].clone()
                self.checkpoints.save(time.perf_counter() - self.clock)
        self.sum_over_ranks(losses, summed, stop)
        return losses

    def record_point(self, done: int) -> bool:
        """Record the curve point after ``done`` steps of this epoch, if it is one; whether it was."""
        step = self.counters.epoch * self.epochs.steps + done
        if self.curve is None or not self.curve.due(step):
            return False
        begun = time.perf_counter()
        self.counters.curve.append(self.curve.record(self.model, step, self.budget.samples_after(step)))
        self.clock += time.perf_counter() - begun
        return True

    def take_step(self, x: torch.Tensor, idx: torch.Tensor, **labels: torch.Tensor) -> torch.Tensor:
        """One SVI step on the minibatch ``x[idx]``; returns the detached loss (no host sync)."""
        return self.step(x, idx, **labels)

    def sum_over_ranks(self, losses: torch.Tensor, start: int, stop: int) -> int:
        """Turn the shard losses ``losses[start:stop]`` into minibatch losses (a no-op in one process)."""
        ranks = self.epochs.ranks
        if ranks is not None and stop > start:
            ranks.sum_(losses[start:stop], "the loss all-reduce")
        return stop

    def checkpoint_due(self, done: int, steps: int) -> bool:
        """Whether ``checkpoint_every`` asks for a checkpoint after ``done`` steps of this epoch
        (counted over the whole run); the end of the epoch has its own."""
        every = self.options.checkpoint_every
        return every is not None and done < steps and (self.counters.epoch * steps + done) % every == 0

    def check(self, losses: torch.Tensor) -> None:
        """Stop, before anything is saved, if a loss, parameter or optimizer state is not finite."""
        if not self.guard.finite(losses):
            self.stop_diverged()

    def stop_diverged(self) -> NoReturn:
        """Go back to the last good state, replay from there, and raise the error that names the bad step."""
        self.checkpoints.load_good()
        x, batches, labels = self.epochs.draw()
        error = self.guard.replay(self.take_step, x, batches, self.counters.step, labels, self.counters.epoch,
                                  self.checkpoints.kept())
        raise error from None

    def guarded_epoch(self, bar, stop: int) -> torch.Tensor:
        """:meth:`run_epoch`, turning an error raised by non-finite parameters into a divergence."""
        try:
            return self.run_epoch(bar, stop)
        except PyroVAEError:
            raise
        except (ValueError, RuntimeError):
            if self.guard.finite():
                raise
            self.stop_diverged()

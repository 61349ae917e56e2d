"""How far a run trains: whole epochs, or a number of training samples that may end inside an epoch.

Steps are counted over the whole run ("global steps"): an epoch of N rows in minibatches of M
has ceil(N / M) steps, the last one possibly short, so the samples seen after global step s are
the rows of the finished epochs plus those of the steps done in the current one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import FrozenSet, Optional

from ..errors import PyroVAEError


@dataclass(frozen=True)
class Budget:
    """The training budget: ``epochs`` epochs, or, when ``samples`` is given, that many samples.

    :param rows: training rows N; ``batch_size``: M.
    """

    epochs: int
    samples: Optional[int]
    rows: int
    batch_size: int

    @property
    def steps_per_epoch(self) -> int:
        """Minibatches per epoch."""
        return math.ceil(self.rows / self.batch_size)

    def samples_after(self, step: int) -> int:
        """Training samples seen after global step ``step``."""
        epoch, inside = divmod(step, self.steps_per_epoch)
        return epoch * self.rows + min(inside * self.batch_size, self.rows)

    @property
    def total_steps(self) -> int:
        """Global steps of the whole run: the first step after which ``samples`` rows are seen."""
        if self.samples is None:
            return self.epochs * self.steps_per_epoch
        epochs, rest = divmod(self.samples, self.rows)
        return epochs * self.steps_per_epoch + math.ceil(rest / self.batch_size)

    def steps_in(self, epoch: int) -> int:
        """Steps of epoch ``epoch`` (0-based) that the budget covers: all of them but in the last."""
        return max(0, min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch))

    def points(self, count: int) -> FrozenSet[int]:
        """``count`` global steps spaced evenly in log samples seen, from the first step to the last
        (fewer where steps coincide): where the curves of Kingma & Welling 2013, Figure 2 are drawn."""
        total = self.total_steps
        if count <= 0 or total == 0:
            return frozenset()
        if count == 1:
            return frozenset({total})
        ratio = total ** (1 / (count - 1))
        return frozenset({total} | {max(1, round(ratio ** i)) for i in range(count - 1)})

    def check_resume(self, done: int, path: str) -> None:
        """Refuse a resume that asks for less than the ``done`` global steps already trained."""
        if done <= self.total_steps:
            return
        seen = self.samples_after(done)
        if self.samples is not None:
            raise PyroVAEError(f"run {path} already has {seen} training samples; ask for at least {seen}")
        epoch, step = divmod(done, self.steps_per_epoch)
        begun = f" and part of epoch {epoch + 1}" if step else ""
        raise PyroVAEError(f"run {path} already has {epoch} epochs{begun}; ask for at least {epoch + (step > 0)}")

"""Learning curves at log-spaced points of samples seen, as in Kingma & Welling 2013, Figure 2.

At each point the train and the test ELBO are evaluated the same way (``elbo_terms``, on their
own RNG stream), the train one on a fixed subset of the training rows, so the two curves differ
by the data alone: the gap between them is overfitting, not the difference between a running
minibatch average and an evaluation.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, FrozenSet, Optional

import torch

from ..evaluate import elbo_terms
from .loop import TestSet

#: Training rows the train ELBO of a curve point is evaluated on (the first ones).
TRAIN_ROWS = 10_000


class Curve:
    """Records the train and test ELBO at the global steps ``points``.

    :param train: the training rows; with ``dynamic`` binarization the subset is binarized once,
        from its own generator seeded by ``seed``, so every point scores the same binary rows.
    :param labels: the training rows' labels (a conditional VAE's ``y``), or None.
    :param test: the held-out rows (None: train records only).
    :param hook: ``hook(record, model)`` after each point is evaluated (it may add entries).
    """

    def __init__(self, points: FrozenSet[int], train: torch.Tensor, labels: Optional[torch.Tensor],
                 test: Optional[TestSet], dynamic: bool, seed: int, ranks=None,
                 hook: Optional[Callable[[Dict[str, Any], Any], None]] = None) -> None:
        self.points, self.test, self.seed, self.ranks, self.hook = points, test, seed, ranks, hook
        device = test.x.device if test is not None else train.device
        rows = train[:TRAIN_ROWS].to(device)
        if dynamic:
            rows = torch.bernoulli(rows, generator=torch.Generator(device).manual_seed(seed))
        self.train = rows
        self.labels = None if labels is None else labels[:TRAIN_ROWS].to(device)

    def due(self, step: int) -> bool:
        """Whether global step ``step`` is a point of the curve."""
        return step in self.points

    def record(self, model, step: int, samples: int) -> Dict[str, Any]:
        """The record of one point: step, samples seen, train ELBO and the test records."""
        train = elbo_terms(model, self.train, seed=self.seed, labels=self.labels, ranks=self.ranks)["elbo"]
        test = {} if self.test is None else self.test.record(model)
        record = {"step": step, "samples_seen": samples, "train_elbo": train, **test}
        if self.hook is not None:
            self.hook(record, model)
        return record

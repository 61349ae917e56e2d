"""The data of every epoch: order and binarization, drawn from the run's own data stream."""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch

from .. import distributed
from ..data.binarization import fresh_binarization

#: One epoch as the step sees it: the rows, the minibatch indices into them, and the rows' labels.
Epoch = Tuple[torch.Tensor, Tuple[torch.Tensor, ...], Dict[str, torch.Tensor]]


class Epochs:
    """Draws each epoch's minibatches (and, with dynamic binarization, its binary images).

    Data order and binarization draw from their own generator, seeded by the run's seed, so
    every estimator sees the same minibatches whatever noise it consumes and a comparison is
    fair. :attr:`epoch_rng` is the generator's state when the current epoch was drawn: a
    checkpoint taken inside the epoch stores it, and a resumed run redraws the same epoch.

    :param train: the training rows (on the host for a data-parallel rank, see :meth:`draw`).
    :param labels: model/guide keyword arguments of the rows (a conditional VAE's ``y``), or empty.
    :param ranks: a data-parallel run's ranks (None in one process).
    """

    def __init__(self, train: torch.Tensor, batch_size: int, dynamic: bool, seed: int, device: torch.device,
                 labels: Dict[str, torch.Tensor], ranks: Optional[distributed.Ranks] = None) -> None:
        self.train, self.batch_size, self.dynamic, self.device = train, batch_size, dynamic, device
        self.labels, self.ranks = labels, ranks
        self.data_rng = torch.Generator(device).manual_seed(seed)
        self.epoch_rng: Optional[torch.Tensor] = None

    @property
    def rows(self) -> int:
        """Training rows N."""
        return len(self.train)

    @property
    def steps(self) -> int:
        """Minibatches per epoch."""
        return math.ceil(self.rows / self.batch_size)

    def draw(self) -> Epoch:
        """The next epoch (its data RNG state remembered first)."""
        self.epoch_rng = self.data_rng.get_state()
        # Dynamic binarization: a fresh Bernoulli draw of every grey-level image each epoch.
        x = fresh_binarization(self.train, self.data_rng) if self.dynamic else self.train
        batches = torch.randperm(self.rows, device=self.device, generator=self.data_rng).split(self.batch_size)
        if self.ranks is not None and not self.dynamic:  # a rank holds its shard only
            return distributed.shard_epoch(self.ranks, x, batches, self.labels, self.device)
        return x, batches, self.labels

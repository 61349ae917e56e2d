"""Optional TensorBoard logging of a training run: per-epoch scalars and image grids.

Needs the ``tensorboard`` package (``pip install "pyrovae[tensorboard]"``); without
it, :func:`require_tensorboard` raises a one-line :class:`PyroVAEError`. The
logger is a :func:`~pyrovae.fit` callback that reads the epoch's record from
the run folder's ``metrics.json`` and writes events under ``<run>/tensorboard``.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

import torch

from .errors import PyroVAEError
from .plots import PlotData, grid_tensor
from .run_report import TENSORBOARD_DIR
from .runs import RunFolder

#: metrics.json keys and their TensorBoard tags.
SCALARS = {"train_elbo": "elbo/train", "test_elbo": "elbo/test", "train_iwae": "iwae/train", "test_iwae": "iwae/test",
           "test_kl": "kl/test", "test_recon": "recon/test", "seconds": "time/train_seconds"}
#: Image-grid kinds of :mod:`pyrovae.plots` logged every epoch.
IMAGES = ("recon", "samples")


def require_tensorboard():
    """torch's ``SummaryWriter`` class, or a :class:`PyroVAEError` saying how to install TensorBoard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise PyroVAEError("--tensorboard needs the tensorboard package: "
                           "pip install tensorboard (or pip install 'pyrovae[tensorboard]')") from None
    return SummaryWriter


class TensorBoardLogger:
    """A ``fit(..., callback=...)`` that logs each epoch of the run in ``run`` to TensorBoard.

    :param run: the run folder ``fit`` writes (``out=``); events go to ``<run>/tensorboard``.
    :param x: test rows for the ``recon`` grid; ``labels`` their classes (for conditional VAEs).
    :param image_shape: ``(H, W)``; without it only scalars are logged.
    :param seed: the stream the grids draw on (the global RNG is left alone).
    """

    def __init__(self, run: str | os.PathLike, x: torch.Tensor, labels: Optional[torch.Tensor] = None,
                 image_shape: Optional[Tuple[int, int]] = None, seed: int = 0) -> None:
        self._writer_class = require_tensorboard()
        self.folder = RunFolder(run)
        self.x, self.labels, self.image_shape, self.seed = x, labels, image_shape, seed
        self.writer = None  # opened at the first epoch: the run folder must not exist before fit starts

    def __call__(self, epoch: int, vae) -> None:
        """Log the scalars of the epoch's record, the KL weight, and the image grids."""
        if self.writer is None:
            self.writer = self._writer_class(str(self.folder.path / TENSORBOARD_DIR))
        record = self.folder.read_metrics()[-1]
        step = record["samples_seen"]
        for key, tag in SCALARS.items():
            if key in record:
                self.writer.add_scalar(tag, record[key], step)
        self.writer.add_scalar("train/kl_weight", vae.kl_weight, step)
        if self.image_shape:
            device = next(vae.parameters()).device
            labels = None if self.labels is None else self.labels.to(device)
            data = PlotData(vae, self.x.to(device), labels, self.image_shape, seed=self.seed)
            for kind in IMAGES:
                self.writer.add_image(kind, grid_tensor(kind, data), step)
        self.writer.flush()

    def close(self) -> None:
        """Close the event file."""
        if self.writer is not None:
            self.writer.close()

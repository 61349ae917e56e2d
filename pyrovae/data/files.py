"""The user's own data files: ``.npz`` or ``.pt`` archives of rows, read without running their code.

A file holds ``x_train`` (and optional ``x_test``, ``y_train``, ``y_test``)
or a single ``x`` (optional labels ``y``). Without a test array the rows are
split 80/20 under the fixed split seed; see :func:`~pyrovae.data.load_dataset`.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import PyroVAEError, unknown_name
from ..validation import check_labels, one_line, validate_array
from .dataset import _SPLIT_SEED, Dataset, _make_dataset, _split_indices

# Where a user file's labels and arrays may sit; anything else is probably a typo.
_FILE_KEYS = ("x", "y", "x_train", "y_train", "x_test", "y_test")
_FILE_SUFFIXES = (".npz", ".pt")
# Share of the rows held out for testing when a file holds no test array.
_TEST_FRACTION = 0.2


def _read_user_file(path: Path) -> Mapping[str, Any]:
    """The arrays stored in a ``.npz`` or ``.pt`` file, by key; never runs code from the file."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                return {key: npz[key] for key in npz.files}
        content = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        # torch's own message advises weights_only=False, i.e. running the file's code: don't relay it.
        raise PyroVAEError(
            f"cannot read {str(path)!r}: it holds objects other than tensors; save a dict of tensors"
        ) from None
    except Exception as exc:  # corrupt archives, pickled objects, wrong format: all "unreadable"
        raise PyroVAEError(f"cannot read {str(path)!r}: {one_line(exc)}") from None
    if not isinstance(content, Mapping):
        raise PyroVAEError(
            f"{str(path)!r} must hold a dict with keys 'x_train' (and optional 'x_test', 'y_train', "
            f"'y_test') or 'x', got {type(content).__name__}"
        )
    return dict(content)


def _check_file_keys(arrays: Mapping[str, Any], path: str) -> None:
    """Require either {x[, y]} or {x_train[, x_test, y_train, y_test]}; unknown keys are likely typos."""
    for key in arrays:
        if key not in _FILE_KEYS:
            raise unknown_name(f"array key in {path!r}", key, _FILE_KEYS)
    extra = sorted(set(arrays) - {"x", "y"})
    if "x" in arrays and extra:
        raise PyroVAEError(f"{path!r}: key 'x' (with optional 'y') cannot be mixed with {extra}")
    if "x" not in arrays and "x_train" not in arrays:
        raise PyroVAEError(f"{path!r} must hold an array 'x_train' or 'x', found keys {sorted(arrays)}")
    if "y_test" in arrays and "x_test" not in arrays:
        raise PyroVAEError(f"{path!r} has 'y_test' but no 'x_test'")


_Split = tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor | None, torch.Tensor | None]]


def _given_split(arrays: Mapping[str, Any], path: str) -> _Split:
    """Train and test rows exactly as stored under x_train/x_test (labels optional)."""
    train = validate_array(arrays["x_train"], name=f"{path}:x_train")
    test = validate_array(arrays["x_test"], name=f"{path}:x_test")
    labels = tuple(
        None if arrays.get(key) is None else check_labels(arrays[key], len(rows), f"{path}:{key}")
        for key, rows in (("y_train", train), ("y_test", test))
    )
    return train, test, labels


def _held_out_split(arrays: Mapping[str, Any], path: str) -> _Split:
    """One array (x, or x_train without x_test) split 80/20 with a fixed seed, labels alongside."""
    x_key, y_key = ("x", "y") if "x" in arrays else ("x_train", "y_train")
    x = validate_array(arrays[x_key], name=f"{path}:{x_key}")
    y = None if arrays.get(y_key) is None else check_labels(arrays[y_key], len(x), f"{path}:{y_key}")
    if len(x) < 2:
        raise PyroVAEError(f"{path!r} needs at least 2 rows to split into train and test, got {len(x)}")
    n_test = max(1, round(_TEST_FRACTION * len(x)))
    train_idx, test_idx = _split_indices(len(x), n_test, torch.Generator().manual_seed(_SPLIT_SEED))
    labels = (None, None) if y is None else (y[train_idx], y[test_idx])
    return x[train_idx], x[test_idx], labels


def _image_shape(x: Any) -> tuple[int, int] | None:
    """(H, W) for a 3-D (N, H, W) array, else None."""
    shape = tuple(x.shape) if isinstance(x, torch.Tensor) else tuple(np.shape(x))
    return (int(shape[1]), int(shape[2])) if len(shape) == 3 else None


def _load_user_file(path: str, *, binarize: str, seed: int) -> Dataset:
    """A user's ``.npz``/``.pt`` file of rows; see :func:`load_dataset` for the accepted keys."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise PyroVAEError(f"data file {path!r} not found")
    arrays = _read_user_file(file)
    _check_file_keys(arrays, path)
    split = _given_split if "x_test" in arrays else _held_out_split
    train, test, labels = split(arrays, path)
    shape = _image_shape(arrays["x"] if "x" in arrays else arrays["x_train"])
    return _make_dataset(path, train, test, labels, binarize, seed, shape)


def _is_user_file(name: str) -> bool:
    """Whether ``name`` looks like a path to a user data file (by suffix)."""
    return name.lower().endswith(_FILE_SUFFIXES)

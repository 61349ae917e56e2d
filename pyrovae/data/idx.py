"""MNIST-format (idx) datasets: parsing, locating and downloading the files.

:func:`load_idx` reads one idx file, plain or ``.gz``. The ``mnist`` and
``fashion-mnist`` loaders look for the four files in ``data_dir``, then in
``$PYROVAE_DATA`` (each as a flat folder, a folder named after the dataset,
or torchvision's ``<Class>/raw`` layout), then in folders filled by
distribution packages (``/usr/share/datasets/fashion-mnist``), and download
them through torchvision only when allowed. torchvision is imported only
for a download.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import PyroVAEError
from ..validation import one_line
from .dataset import DIGITS, Dataset, _make_dataset

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


#: Label names of the idx datasets. Fashion-MNIST's are those of Xiao, Rasul & Vollgraf (2017),
#: "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning Algorithms", table 1.
CLASS_NAMES = {
    "mnist": DIGITS,
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
}


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


#: idx type codes and their big-endian element types (LeCun et al., "THE MNIST DATABASE", file formats).
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_idx(path: Path) -> torch.Tensor:
    """Parse a plain idx file: strict, the data must fill exactly the shape its header gives."""
    return _parse_idx(path.read_bytes(), path)


def _read_gzipped_idx(path: Path) -> torch.Tensor:
    """Decompress in memory and parse."""
    with gzip.open(path, "rb") as f:
        return _parse_idx(f.read(), path)


def _parse_idx(raw: bytes, path: Path) -> torch.Tensor:
    """The tensor an idx file holds: a magic number (two zero bytes, the type code, the number of
    dimensions), one big-endian int32 size per dimension, then the values in row-major order.

    Parsed here (as torchvision's ``read_sn3_pascalvincent_tensor`` does) rather than through
    torchvision, whose import pulls in TorchDynamo: seconds of start-up for every process that
    reads Fashion-MNIST.
    """
    bad = PyroVAEError(f"{str(path)!r} is not a valid idx file (bad header or size)")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or not 1 <= raw[3] <= 3:
        raise bad
    ndim, offset = raw[3], 4 * (raw[3] + 1)
    if len(raw) < offset:
        raise bad
    shape = [int(n) for n in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)]
    values = np.frombuffer(raw, dtype=_IDX_TYPES[raw[2]], offset=offset)
    if values.size != int(np.prod(shape)):
        raise bad
    return torch.from_numpy(values.astype(values.dtype.newbyteorder("="))).reshape(shape)


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
        CLASS_NAMES[name],
    )


def _scale_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W) -> float32 rows (N, H*W) in [0, 1]."""
    return images.reshape(images.shape[0], -1).to(torch.float32).div_(255.0)


def _load_mnist(
    *, binarize: str = "dynamic", data_dir: str | None = None, download: bool = False, seed: int = 0
) -> Dataset:
    """The full MNIST digits (60000 train / 10000 test) from idx files."""
    return _load_idx_dataset("mnist", binarize, data_dir, download, seed)


def _load_fashion_mnist(
    *, binarize: str = "dynamic", data_dir: str | None = None, download: bool = False, seed: int = 0
) -> Dataset:
    """Fashion-MNIST (60000 train / 10000 test) from idx files, also found in Debian's package folder."""
    return _load_idx_dataset("fashion-mnist", binarize, data_dir, download, seed)

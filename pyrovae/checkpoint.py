"""Crash-safe files: atomic writes, and checkpoints that can never run code.

A write goes to a temporary file in the destination folder, is flushed and
fsynced, then renamed over the destination (``os.replace`` is atomic on
POSIX), so a reader sees the old file or the new one, never half of one.
Checkpoints are read with ``torch.load(weights_only=True)``: tensors,
numbers, strings and containers only, so a crafted file cannot execute code.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Dict

import torch

from .errors import PyroVAEError


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results should follow the umask
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry itself is on disk.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2) + "\n"), mode="w")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, turning a missing or malformed file into :class:`PyroVAEError`."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise PyroVAEError(f"{path} does not exist") from None
    except (OSError, ValueError) as e:
        raise PyroVAEError(f"{path} is not readable JSON ({e})") from None


def save_checkpoint(path: str | os.PathLike, state: Dict[str, Any]) -> None:
    """Atomically save ``state`` (tensors, numbers, strings and containers of them)."""
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; refuse missing, corrupt or code-carrying files."""
    if not Path(path).is_file():
        raise PyroVAEError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols; our error says it all
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PyroVAEError(f"checkpoint {path} was refused: it holds more than weights ({first})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise PyroVAEError(f"checkpoint {path} is corrupted or truncated ({type(e).__name__})") from None

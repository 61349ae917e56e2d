"""The run folder: ``config.json``, ``checkpoint.pt``, ``metrics.json`` and ``summary.json``.

Every file is written atomically (see :mod:`pyrovae.checkpoint`), so a run
killed at any moment leaves a folder whose files are each complete. While a
run trains, the folder also holds ``run.lock`` (see :mod:`pyrovae.lock`), so a
second training into it is refused.

A run that is killed before its first checkpoint leaves ``run.lock`` (stale)
and ``config.json``, and perhaps a temporary file: such a folder counts as
empty for a new run, and ``--resume`` starts it from the beginning.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from .checkpoint import atomic_write, load_checkpoint, read_json, write_json
from .config import RunConfig
from .data import load_dataset
from .errors import PyroVAEError
from .lock import RunLock, in_use_error
from .vae import vae_from_config

LOCK_NAME = "run.lock"


class RunFolder:
    """Paths and atomic I/O for one run folder."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.checkpoint = self.path / "checkpoint.pt"
        self.metrics = self.path / "metrics.json"
        self.summary = self.path / "summary.json"
        self.lock_file = self.path / LOCK_NAME
        self._lock: Optional[RunLock] = None

    def exists(self) -> bool:
        """Whether a run was started here (its ``config.json`` exists)."""
        return self.config.is_file()

    def has_checkpoint(self) -> bool:
        """Whether a checkpoint was saved here."""
        return self.checkpoint.is_file()

    def require(self, checkpoint: bool = True) -> "RunFolder":
        """Raise :class:`PyroVAEError` unless this is a run folder (with a checkpoint, by default)."""
        if not self.exists():
            raise PyroVAEError(f"{self.path} is not a pyrovae run folder (no config.json)")
        if checkpoint and not self.has_checkpoint():
            raise PyroVAEError(f"run {self.path} has no checkpoint.pt yet (it stopped before its first checkpoint)")
        return self

    def check_free(self) -> None:
        """Refuse a folder that another running process trains into (its ``run.lock`` is held)."""
        if self._lock is None:
            holder = RunLock(self.lock_file).holder()
            if holder is not None:
                raise in_use_error(self.lock_file, holder)

    def check_new(self) -> None:
        """Refuse to start a fresh run where files already exist: nothing on disk is overwritten.

        What a run killed before its first checkpoint leaves behind (a stale ``run.lock``, its
        ``config.json``, temporary files) does not count.
        """
        if not self.path.exists():
            return
        if not self.path.is_dir():
            raise PyroVAEError(f"{self.path} already exists and is not a folder; choose another --out")
        self.check_free()
        names = {p.name for p in self.path.iterdir() if not self._is_temporary(p.name)}
        leftover = LOCK_NAME in names and names <= {LOCK_NAME, self.config.name}
        if names and not leftover:
            raise PyroVAEError(f"{self.path} already exists and is not empty; pass --resume or choose another --out")

    def _is_temporary(self, name: str) -> bool:
        # atomic_write's temporaries: ".<file name>.<random>.tmp"; one that is still there was orphaned.
        files = (self.config, self.checkpoint, self.metrics, self.summary)
        return name.endswith(".tmp") and any(name.startswith(f".{f.name}.") for f in files)

    @contextlib.contextmanager
    def session(self, config: Dict[str, Any], fresh: bool) -> Iterator["RunFolder"]:
        """Hold ``run.lock`` while a run trains here.

        The folder is made if needed; a ``fresh`` run writes ``config.json`` at once. If the
        block fails before a checkpoint exists, what this session wrote is removed again, so a
        failed start leaves no partial run folder. Orphaned temporary files are removed first.
        """
        created = [p for p in (self.path, *self.path.parents) if not p.exists()]  # deepest first
        self.path.mkdir(parents=True, exist_ok=True)
        wrote_config = False
        try:
            self._lock = RunLock(self.lock_file).acquire()
            for p in self.path.iterdir():
                if self._is_temporary(p.name):
                    p.unlink()
            if fresh:
                self.check_new()
                write_json(self.config, config)
                wrote_config = True
            yield self
        except BaseException:
            if wrote_config and not self.has_checkpoint():
                self.config.unlink()
            raise
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            for folder in created:
                if any(folder.iterdir()):
                    break
                folder.rmdir()

    def read_config(self) -> Dict[str, Any]:
        """The stored configuration."""
        return read_json(self.config)

    def write_config(self, config: Dict[str, Any]) -> None:
        """Replace ``config.json`` (on resume, to record the new epoch count)."""
        write_json(self.config, config)

    def read_metrics(self) -> List[Dict[str, Any]]:
        """Per-epoch records so far (empty before the first epoch ends)."""
        return read_json(self.metrics) if self.metrics.is_file() else []

    def write_metrics(self, records: List[Dict[str, Any]]) -> None:
        """Replace ``metrics.json``."""
        write_json(self.metrics, records)

    def read_summary(self) -> Dict[str, Any]:
        """The summary so far (empty if none)."""
        return read_json(self.summary) if self.summary.is_file() else {}

    def update_summary(self, **entries: Any) -> Dict[str, Any]:
        """Merge ``entries`` into ``summary.json`` and return the result."""
        summary = {**self.read_summary(), **entries}
        write_json(self.summary, summary)
        return summary

    def save_checkpoint(self, serialized: bytes) -> None:
        """Atomically replace ``checkpoint.pt`` with a state already serialized by ``torch.save``
        (the trainer serializes once, for this file and its in-memory last good state)."""
        atomic_write(self.checkpoint, lambda f: f.write(serialized))

    def load_checkpoint(self, map_location: Any = "cpu") -> Dict[str, Any]:
        """Load ``checkpoint.pt`` safely (weights only)."""
        return load_checkpoint(self.checkpoint, map_location)


def load_run(path: str | os.PathLike, device: str = "cpu"):
    """Rebuild a run from its folder: ``(vae, config, dataset, folder)``, weights from the checkpoint.

    The dataset is reloaded from the config, so ``dataset.test`` is the exact
    test set the run was evaluated on during training.
    """
    folder = RunFolder(path).require()
    config = RunConfig.from_dict(folder.read_config())
    if config.dataset is None:
        raise PyroVAEError(f"run {folder.path} was trained on in-memory data from Python; "
                           "evaluate it with pyrovae.evaluate_elbo / log_likelihood on that data")
    data = load_dataset(config.dataset, binarize=config.binarize, data_dir=config.data_dir, seed=config.seed)
    vae = vae_from_config(config, data.x_dim, data.image_shape)
    try:
        vae.load_state_dict(folder.load_checkpoint()["model"])
    except (RuntimeError, KeyError) as e:
        raise PyroVAEError(f"checkpoint of {folder.path} does not match the network in its config.json "
                           f"({str(e).splitlines()[0]})") from None
    return vae.to(device), config, data, folder

"""The run folder: ``config.json``, ``checkpoint.pt``, ``metrics.json`` and ``summary.json``.

Every file is written atomically (see :mod:`pyrovae.checkpoint`), so a run
killed at any moment leaves a folder whose files are each complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List

from .checkpoint import load_checkpoint, read_json, save_checkpoint, write_json
from .config import RunConfig
from .data import load_dataset
from .errors import PyroVAEError
from .vae import vae_from_config


class RunFolder:
    """Paths and atomic I/O for one run folder."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.config = self.path / "config.json"
        self.checkpoint = self.path / "checkpoint.pt"
        self.metrics = self.path / "metrics.json"
        self.summary = self.path / "summary.json"

    def exists(self) -> bool:
        """Whether a run was started here (its ``config.json`` exists)."""
        return self.config.is_file()

    def require(self) -> "RunFolder":
        """Raise :class:`PyroVAEError` unless this is a run folder with a checkpoint."""
        if not self.exists():
            raise PyroVAEError(f"{self.path} is not a pyrovae run folder (no config.json)")
        if not self.checkpoint.is_file():
            raise PyroVAEError(f"run {self.path} has no checkpoint.pt yet (it never finished an epoch)")
        return self

    def check_new(self) -> None:
        """Refuse to start a fresh run where files already exist: nothing on disk is overwritten."""
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise PyroVAEError(f"{self.path} already exists and is not empty; pass --resume or choose another --out")

    def create(self, config: Dict[str, Any]) -> None:
        """Make the folder and write ``config.json``."""
        self.check_new()
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.config, config)

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

    def save_checkpoint(self, state: Dict[str, Any]) -> None:
        """Atomically replace ``checkpoint.pt``."""
        save_checkpoint(self.checkpoint, state)

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
    vae = vae_from_config(config, data.x_dim)
    try:
        vae.load_state_dict(folder.load_checkpoint()["model"])
    except (RuntimeError, KeyError) as e:
        raise PyroVAEError(f"checkpoint of {folder.path} does not match the network in its config.json "
                           f"({str(e).splitlines()[0]})") from None
    return vae.to(device), config, data, folder

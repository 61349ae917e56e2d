"""A comparison's folder on disk, so that a grid of hours survives a stopped session.

``DIR/grid.json`` holds the settings that decide the grid's numbers; every run of the grid is
an ordinary :func:`~pyrovae.training.fit` run folder ``DIR/runs/nz<Nz>-seed<S>-<estimator>/``
(its checkpoints make an interrupted run resumable), and ``record.json`` in it is the run's
finished comparison record. Resuming keeps every finished record, continues an interrupted run
from its checkpoint and starts the rest; a resume with other settings is refused.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

from .checkpoint import write_json
from .errors import PyroVAEError, PyroVAEWarning
from .runs import RunFolder

#: Settings a resume may change: they move the work, not the numbers.
RESUMABLE = frozenset({"device"})


class GridFolder:
    """The folder of one comparison grid.

    :param path: the folder; ``settings``: the grid's JSON-ready settings.
    :param resume: continue the grid found there (a folder without one starts a new grid, with a
        warning, so a job that always passes ``--resume`` needs no first-time case).
    :param writer: whether this process writes the folder (in a data-parallel run, rank 0 alone).
    """

    def __init__(self, path: str, settings: Dict[str, Any], resume: bool, writer: bool = True) -> None:
        self.path, self.settings = Path(path), json.loads(json.dumps(settings))
        self.file = self.path / "grid.json"
        self.resume = resume and self._found()
        if self.resume:
            self._check_same(json.loads(self.file.read_text()))
        elif writer:
            RunFolder(self.path).check_new()
            self.path.mkdir(parents=True, exist_ok=True)
            write_json(self.file, self.settings)

    def _found(self) -> bool:
        if self.file.is_file():
            return True
        warnings.warn(f"{self.path} holds no comparison yet; starting a new one", PyroVAEWarning, stacklevel=3)
        return False

    def _check_same(self, stored: Dict[str, Any]) -> None:
        """Refuse to resume a grid whose settings differ, naming the first difference."""
        for key in sorted(set(stored) | set(self.settings)):
            if key not in RESUMABLE and stored.get(key) != self.settings.get(key):
                raise PyroVAEError(f"comparison in {self.path} was run with {key} = {stored.get(key)!r}, not "
                                   f"{self.settings.get(key)!r}; resume it with its own settings or use another --out")

    def run_folder(self, z_dim: int, seed: int, estimator: str) -> Path:
        """The :func:`~pyrovae.training.fit` run folder of one run."""
        return self.path / "runs" / f"nz{z_dim}-seed{seed}-{estimator}"

    def finished(self, z_dim: int, seed: int, estimator: str) -> Optional[Dict[str, Any]]:
        """The record of a finished run (None: not finished), with its probe keys back to ints."""
        path = self.run_folder(z_dim, seed, estimator) / "record.json"
        if not self.resume or not path.is_file():
            return None
        record = json.loads(path.read_text())
        record["gradients"] = {int(k): v for k, v in record["gradients"].items()}
        return record

    def started(self, z_dim: int, seed: int, estimator: str) -> bool:
        """Whether a run was begun here (its fit folder holds a run to resume)."""
        return self.resume and RunFolder(self.run_folder(z_dim, seed, estimator)).exists()

    def keep(self, record: Dict[str, Any]) -> None:
        """Store a finished run's record: a resume keeps it instead of training the run again."""
        folder = self.run_folder(record["z_dim"], record["seed"], record["estimator"])
        folder.mkdir(parents=True, exist_ok=True)  # a run trained without a test set writes no folder of its own
        write_json(folder / "record.json", json.loads(json.dumps(record, default=float)))

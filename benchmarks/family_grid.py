"""What the per-family benchmarks share: their common flags, and updating rows of a results file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict

import torch

from pyrovae import FAMILIES


def family_flags(p: argparse.ArgumentParser, epochs: int, out: str) -> None:
    """``--epochs``, ``--latent-dim``, ``--seed``, ``--families`` (default: every registered one), ``--out``."""
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--latent-dim", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--families", nargs="*", default=list(FAMILIES.names()))
    p.add_argument("--out", default=out)


def previous_rows(out: str) -> Dict[str, dict]:
    """The rows already in ``out``: re-running a subset (``--families``) updates only those rows."""
    old = json.loads(Path(out).read_text()) if Path(out).is_file() else {}
    return dict(old.get("results", {}))


def write_rows(out: str, command: str, rows: Dict[str, dict]) -> None:
    """Write the results file: the command, the torch build and threads, the rows in registry order."""
    rows = {name: rows[name] for name in FAMILIES.names() if name in rows}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps({"command": command, "torch": torch.__version__,
                                     "threads": torch.get_num_threads(), "results": rows}, indent=2) + "\n")
    print(f"wrote {out}")

"""``pyrovae plot``: write figures of a run into its folder and refresh its report.md."""

from __future__ import annotations

import argparse

from ..plots import PLOTS
from ..training import resolve_device
from .common import device_flag, registered_names, write_figures_and_report


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The run folder, the kinds (listed in the description) and the device."""
    kinds = "\n".join(f"  {name:<9} {spec.description}" for name, spec in PLOTS.items())
    p.description = f"{p.description}\nKinds:\n{kinds}"
    p.add_argument("run", help="run folder written by pyrovae train")
    p.add_argument("--kind", type=registered_names(PLOTS), default=None,
                   help="comma-separated kinds (default: every kind that applies to the run; manifold needs Nz = 2)")
    device_flag(p, "draw")


def run(args: argparse.Namespace) -> int:
    """Draw and report."""
    write_figures_and_report(args.run, args.kind or (), device=str(resolve_device(args.device)))
    return 0

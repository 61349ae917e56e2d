"""What several subcommands share: argument types, and printing the files a run wrote."""

from __future__ import annotations

import argparse
from typing import Callable, Dict, List

from ..errors import PyroVAEError


def registered_names(registry) -> Callable[[str], List[str]]:
    """An argparse type: a comma-separated list of names registered in ``registry``."""
    def parse(text: str) -> list:
        try:
            return [registry.check(name.strip()) for name in text.split(",")]
        except PyroVAEError as e:  # argparse would hide a plain ValueError's message
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


def positive_ints(text: str) -> List[int]:
    """An argparse type: comma-separated positive integers."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return values


def device_flag(p: argparse.ArgumentParser, what: str) -> None:
    """``--device``, as every command that computes declares it (the training option's help and default)."""
    from ..config import RunConfig
    from ..options import help_of

    p.add_argument("--device", default="auto", help=f"device to {what} on: {help_of(RunConfig, 'device')} "
                                                    "(default auto)")


def print_files(files: Dict[str, str]) -> None:
    """The figures and the report a command wrote, one per line."""
    for kind, path in files.items():
        if kind != "report":
            print(f"  figure {kind:<9} {path}")
    print(f"report: {files['report']}")


def write_figures_and_report(run: str, kinds, device: str = "cpu") -> None:
    """Figures (``kinds``: None for none, ``()`` for every one that applies), then ``report.md``."""
    from ..plots import write_figures
    from ..run_report import write_run_report

    files = {} if kinds is None else write_figures(run, list(kinds) or None, device=device)
    print_files({**files, "report": str(write_run_report(run))})

"""The ``pyrovae`` command line: ``train``, ``evaluate``, ``compare``, ``plot``, ``sample`` and ``families``.

Each subcommand is a module of this package with ``add_arguments(parser)`` and ``run(args)``,
registered once in :data:`COMMANDS`. The package imports nothing heavy: ``pyrovae --help`` and
``pyrovae --version`` build the parser without torch or Pyro, and a command imports what it
needs when it runs (:func:`build_parser` fills in only the arguments of the command given).

Bad input never produces a traceback: every :class:`~pyrovae.errors.PyroVAEError` (and every
argument error) becomes one line on stderr and exit code 2, and it is raised before anything is
written, so no earlier work on disk is touched.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

from .. import __version__
from ..cpu_load import passive_waits_when_busy
from ..errors import DistributedError, PyroVAEError, PyroVAEWarning
from ..registry import Registry

EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class Command:
    """A subcommand: its one-line ``help``, its ``description``, and the module that implements it.

    :param data_parallel: under ``torchrun`` every rank runs it, joined in one process group.
    """

    module: str
    help: str
    description: str
    data_parallel: bool = False


COMMANDS: Registry[Command] = Registry("command")
COMMANDS.register("train", Command("train", "train a VAE", "Train a VAE with SVI and write a run folder.",
                                   data_parallel=True))
COMMANDS.register("evaluate", Command(
    "evaluate", "evaluate a run", "Test ELBO, a log p(x) estimate with its diagnostics, and the inference gaps.",
    data_parallel=True))
COMMANDS.register("compare", Command(
    "compare", "compare estimators side by side",
    "Train each estimator on the same architecture, seeds and data order; write report.json, report.md and "
    "figures.", data_parallel=True))
COMMANDS.register("plot", Command("plot", "draw figures of a run",
                                  "Write figures of a run into its folder as <kind>.png and refresh report.md."))
COMMANDS.register("sample", Command(
    "sample", "draw from a run's model into a PNG grid or an NPZ file",
    "Draw z ~ p(z) and decode it with a trained run's decoder. A .png gets the decoder means E[x|z] as an "
    "image grid; a .npz the arrays z, mean, x (and y for a conditional run, which draws the classes in turn)."))
COMMANDS.register("families", Command("families", "list distribution families",
                                      "List posterior/prior families and likelihoods."))


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The ``pyrovae`` argument parser. Every subcommand gets its arguments, or with ``only`` just that
    one (the others keep their name and help, which is all ``pyrovae --help`` shows)."""
    parser = _Parser(prog="pyrovae", description="Auto-Encoding Variational Bayes in Pyro.")
    parser.add_argument("--version", action="version", version=f"pyrovae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.description,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if only is None or only == name:
            module = importlib.import_module(f".{command.module}", __name__)
            module.add_arguments(p)
            p.set_defaults(func=module.run)
    return parser


def families_text(kl: bool = False) -> str:
    """What ``pyrovae families`` prints (``kl``: what ``--kl-table`` prints)."""
    from .families import families_text as text

    return text(kl)


def _one_line_warnings(command: str):
    """A ``warnings.showwarning`` that prints pyrovae's own warnings as one line, like its errors."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, PyroVAEWarning):
            print(f"pyrovae {command}: warning: {' '.join(str(message).split())}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)
    return show


def _command_in(argv: Sequence[str]) -> Optional[str]:
    """The subcommand named on the command line (None for ``--help``, ``--version``, a typo...)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS else None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``pyrovae`` console script; returns the exit code."""
    passive_waits_when_busy()  # before torch is imported: its OpenMP runtime reads the policy once
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = build_parser(only=_command_in(argv) or "").parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warnings(args.command)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command inside its process group (under torchrun), turning errors into exit codes."""
    clean, dist = False, None
    try:
        if COMMANDS[args.command].data_parallel:
            from .. import distributed as dist

            # The data-parallel context, passed on explicitly (None in one process).
            args.ranks = dist.init_from_env(getattr(args, "device", None) or "auto")
        code = args.func(args)
        clean = True
        return code
    except PyroVAEError as e:
        message = " ".join(str(e).split())
        print(f"pyrovae {args.command}: error: {_rank_prefix(getattr(args, 'ranks', None))}{message}",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except DistributedError as e:
        # The first line: Pyro appends the trace's shapes to errors raised inside a model.
        print(f"pyrovae {args.command}: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pyrovae {args.command}: interrupted; the last checkpoint is kept in the run folder "
              "(resume with --resume)", file=sys.stderr)
        return 130
    finally:
        if dist is not None:
            dist.shutdown(clean)


def _rank_prefix(ranks) -> str:
    """``"rank R: "`` on the ranks after the first of a data-parallel run (each prints its own error)."""
    return "" if ranks is None or ranks.main else f"rank {ranks.rank}: "

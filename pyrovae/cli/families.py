"""``pyrovae families``: the registered families and likelihoods, or the closed-form KL table."""

from __future__ import annotations

import argparse

from ..tables import families_table, kl_text_table, likelihoods_table, priors_table, text_table


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``--kl-table``."""
    p.add_argument("--kl-table", action="store_true", help="print which (posterior, prior) pairs have a closed-form KL")


def run(args: argparse.Namespace) -> int:
    """Print the tables."""
    print(families_text(kl=args.kl_table))
    return 0


def families_text(kl: bool = False) -> str:
    """What ``pyrovae families`` prints (``kl``: what ``--kl-table`` prints)."""
    if kl:
        return kl_text_table()
    return "\n\n".join(text_table(*table()) for table in (families_table, priors_table, likelihoods_table))

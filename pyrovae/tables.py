"""The registries as tables: one set of rows, printed by ``pyrovae families`` and rendered in the docs.

Each ``*_table()`` returns ``(header, rows)`` built from the live registries, so
a family, prior, likelihood or estimator registered with one call appears in
the command line's listing and in the documentation site alike.
:func:`text_table` and :func:`markdown_table` only format.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence, Tuple

from .data import BINARIZATIONS, DATASETS
from .estimators import ESTIMATORS
from .families import FAMILIES, PRIORS, closed_form_table, support_str
from .likelihoods import LIKELIHOODS
from .networks import ACTIVATIONS
from .fastpath import OPTIMIZERS

Table = Tuple[List[str], List[List[str]]]

KL_LEGEND = "yes = analytic, - = sampled only, x = support mismatch"


def families_table() -> Table:
    """Posterior families: name, reparameterization route, support of z, default prior, description."""
    rows = [[n, f.route, support_str(f.support), f.default_prior, f.description] for n, f in FAMILIES.items()]
    return ["family", "route", "support", "default prior", "description"], rows


def priors_table() -> Table:
    """Priors: name, support of z, description."""
    return ["prior", "support", "description"], [[n, support_str(p.support), p.description]
                                                 for n, p in PRIORS.items()]


def likelihoods_table() -> Table:
    """Decoder likelihoods: name, the support data must lie in, description."""
    return ["likelihood", "support", "description"], [[n, str(s.support), s.description]
                                                      for n, s in LIKELIHOODS.items()]


def estimators_table() -> Table:
    """ELBO estimators: name, what it estimates and how, reference, implementing class."""
    rows = [[n, s.summary, s.reference, f"{s.cls.__module__}.{s.cls.__qualname__}"] for n, s in ESTIMATORS.items()]
    return ["estimator", "summary", "reference", "class"], rows


def kl_table() -> Table:
    """Closed-form KL availability: rows posterior families, columns priors (see :data:`KL_LEGEND`)."""
    table = closed_form_table()
    priors = list(PRIORS.names())
    return ["posterior \\ prior", *priors], [[q, *(table[q, p] for p in priors)] for q in FAMILIES.names()]


def names_table() -> Table:
    """Every name-resolved choice: what kind it is, the names, and the registry that holds them."""
    rows = [
        ["estimator", ESTIMATORS.names(), "pyrovae.ESTIMATORS"],
        ["posterior family", FAMILIES.names(), "pyrovae.FAMILIES"],
        ["prior", PRIORS.names(), "pyrovae.PRIORS"],
        ["likelihood", LIKELIHOODS.names(), "pyrovae.LIKELIHOODS"],
        ["dataset", (*DATASETS.names(), "FILE.npz", "FILE.pt"), "pyrovae.DATASETS"],
        ["binarization", BINARIZATIONS, "pyrovae.data.BINARIZATIONS"],
        ["optimizer", OPTIMIZERS.names(), "pyrovae.fastpath.OPTIMIZERS"],
        ["activation", ACTIVATIONS.names(), "pyrovae.networks.ACTIVATIONS"],
    ]
    return ["kind", "names", "registry"], [[kind, ", ".join(names), where] for kind, names, where in rows]


TABLES: Dict[str, Callable[[], Table]] = {
    "families": families_table, "priors": priors_table, "likelihoods": likelihoods_table,
    "estimators": estimators_table, "kl": kl_table, "names": names_table,
}
"""Every table by name, as the documentation's generated blocks refer to them."""


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths)) + "  " + row[-1]
             for row in [header, *rows]]
    return "\n".join(lines)


def kl_text_table() -> str:
    """The closed-form KL table as ``pyrovae families --kl-table`` prints it: a legend, then a grid."""
    header, rows = kl_table()
    width = max(len(cell) for cell in header[1:] + [r[0] for r in rows]) + 2
    lines = [f"closed-form KL(q||p): rows = posterior q, columns = prior p; {KL_LEGEND}",
             " " * width + "".join(f"{n:>{width}}" for n in header[1:])]
    lines += [f"{r[0]:<{width}}" + "".join(f"{c:>{width}}" for c in r[1:]) for r in rows]
    return "\n".join(lines)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], code: Sequence[int] = (0,),
                   lists: Sequence[int] = (), fmt: Callable[[Any], str] = str) -> str:
    """A Markdown table; ``|`` is escaped everywhere. Every table pyrovae writes goes through here.

    :param code: columns whose cells become code spans.
    :param lists: columns of comma-separated names, each of which becomes a code span.
    :param fmt: turns each cell's value into text (default ``str``), before escaping.
    """
    def cell(value: Any, col: int) -> str:
        text = fmt(value).replace("|", "\\|")  # a bare | would end the cell
        if col in lists:
            return ", ".join(f"`{item}`" for item in text.split(", "))
        return f"`{text}`" if col in code and text else text

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c, i) for i, c in enumerate(row)) + " |" for row in rows]
    return "\n".join(lines)

"""The typed configuration of a training run, with a JSON round trip.

:class:`RunConfig` is :class:`~pyrovae.options.TrainOptions` (how to train)
plus the options that say what to train on and which VAE to build. Every field
is declared once with :func:`~pyrovae.options.option`, which gives it its
``pyrovae train`` flag, help text and check. A run writes its ``RunConfig`` to
``config.json`` in the run folder; ``evaluate`` and ``--resume`` read it back,
so a run can always be rebuilt from its folder.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from .errors import PyroVAEError
from .likelihoods import LIKELIHOODS
from .options import TrainOptions, flag_name, option, positive, resumable

#: Keys of older ``config.json`` files, and the fields they are now.
RENAMED = {"particles": "num_particles"}


def parse_hidden(text: str) -> Tuple[int, ...]:
    """``--hidden`` text: comma-separated sizes, or ``none`` (no hidden layer: a linear encoder and decoder)."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        return tuple(int(h) for h in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _hidden_sizes(name: str, value: Tuple[int, ...]) -> None:
    if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in value):
        raise PyroVAEError(f"hidden sizes must be positive integers, got {list(value)}")


@dataclass
class RunConfig(TrainOptions):
    """Everything needed to rebuild and continue a run; defaults are the documented command-line defaults."""

    # None in config.json: a run of in-memory data, given to fit() from Python.
    dataset: Optional[str] = option("mnist-5k", "mnist-5k, mnist, fashion-mnist, synthetic, or a .npz/.pt file",
                                    metavar="NAME|FILE")
    data_dir: Optional[str] = option(None, "folder holding idx files for mnist / fashion-mnist", resumable=True,
                                     metavar="DIR")
    binarize: Optional[str] = option(None, "dynamic, static or none (default: dynamic for a likelihood of binary "
                                           "data, bernoulli; none for the others)", metavar="MODE")
    latent_dim: int = option(20, "latent dimensions Nz", check=positive, metavar="K")
    hidden: Tuple[int, ...] = option((400,), "hidden layer sizes, comma-separated; 'none' for linear",
                                     parse=parse_hidden, check=_hidden_sizes, metavar="H1[,H2...]")
    activation: str = option("relu", "hidden activation", metavar="NAME")
    posterior: str = option("normal", "posterior family (pyrovae families lists them)", metavar="FAMILY")
    prior: Optional[str] = option(None, "prior family (default: the posterior family's default prior)",
                                  metavar="NAME")
    likelihood: str = option("bernoulli", "decoder likelihood (pyrovae families lists them)", metavar="NAME")
    conditional: str = option("none", "none, prior (N(mu_y, I), Su 2018, eq. 8) or full (CVAE)", metavar="MODE")
    num_classes: Optional[int] = option(None, "label classes of a conditional run, taken from the data",
                                        flag=None)

    def __post_init__(self) -> None:
        self.hidden = tuple(self.hidden)
        super().__post_init__()
        binary = LIKELIHOODS[self.likelihood].binary
        if self.binarize is None:
            self.binarize = "dynamic" if binary else "none"
        elif self.binarize != "none" and not binary:
            raise PyroVAEError(f"--binarize {self.binarize} draws binary data, but the {self.likelihood!r} "
                               "likelihood is not a model of binary data; use --binarize none (its default) "
                               "or --likelihood bernoulli")

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "RunConfig":
        """Rebuild from :meth:`to_dict`'s output (older key names too); unknown keys are an error."""
        d = {RENAMED.get(k, k): v for k, v in d.items()}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise PyroVAEError(f"config has unknown keys: {', '.join(unknown)}")
        return cls(**d)

    def conflicts(self, requested: Dict[str, Any]) -> Dict[str, Tuple[Any, Any]]:
        """Fields in ``requested`` that differ from this config and may not change on resume."""
        out = {}
        changeable = resumable(type(self))
        for key, value in requested.items():
            value = tuple(value) if key == "hidden" else value
            if key not in changeable and getattr(self, key) != value:
                out[key] = (getattr(self, key), value)
        return out

    def resumed_with(self, requested: Dict[str, Any], source: str) -> "RunConfig":
        """This stored config with the resumable fields of ``requested`` applied.

        :raises PyroVAEError: naming every flag in ``requested`` that disagrees with ``source``
            (the stored ``config.json``) and may not change on resume.
        """
        clash = self.conflicts(requested)
        if clash:
            what = ", ".join(f"--{flag_name(k)} {new!r} (run has {old!r})" for k, (old, new) in clash.items())
            raise PyroVAEError(f"--resume: the command line disagrees with {source}: {what}")
        return dataclasses.replace(self, **{k: requested[k] for k in resumable(type(self)) if k in requested})

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
from typing import Any, Dict, Optional, Tuple, Union

from .errors import PyroVAEError
from .hierarchy import compact_hidden, layer_hidden
from .likelihoods import LIKELIHOODS
from .options import TrainOptions, flag_name, option, positive, resumable

#: Keys of older ``config.json`` files, and the fields they are now.
RENAMED = {"particles": "num_particles"}
#: Posterior names of configs written before ``arch`` existed that now name another model, and the
#: name of the model they meant: ``iaf`` was the global-layer flow before it became the amortized IAF.
FORMER_POSTERIORS = {"iaf": "iaf-global"}


def _sizes(text: str) -> Tuple[int, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        return tuple(int(h) for h in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def parse_hidden(text: str) -> Tuple:
    """``--hidden`` text: comma-separated sizes, or ``none`` (no hidden layer: a linear encoder and decoder).

    With several stochastic layers, one list per layer separated by ``/`` (``100,100/50,50``).
    """
    return compact_hidden([_sizes(part) for part in text.split("/")]) if "/" in text else _sizes(text)


def parse_latent(text: str) -> Union[int, Tuple[int, ...]]:
    """``--latent-dim`` text: one size (``20``), or one per stochastic layer, bottom-up (``100,50``)."""
    sizes = _sizes(text)
    return sizes[0] if len(sizes) == 1 else sizes


def _hidden_sizes(name: str, value: Tuple) -> None:
    flat = [h for hs in layer_hidden(value, len(value) or 1) for h in hs]
    if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in flat):
        raise PyroVAEError(f"hidden sizes must be positive integers, got {list(value)}")


def _latent_sizes(name: str, value: Union[int, Tuple[int, ...]]) -> None:
    for size in (value,) if isinstance(value, int) or not value else value:
        positive(name, size)


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
    latent_dim: Union[int, Tuple[int, ...]] = option(
        20, "latent dimensions Nz; one per stochastic layer, bottom-up, for a hierarchical VAE (100,50)",
        parse=parse_latent, check=_latent_sizes, metavar="K[,K2...]")
    hidden: Tuple = option((400,), "hidden layer sizes, comma-separated; 'none' for linear; one list per "
                                   "stochastic layer separated by / (100,100/50,50)",
                           parse=parse_hidden, check=_hidden_sizes, metavar="H1[,H2...][/...]")
    activation: str = option("relu", "hidden activation", metavar="NAME")
    posterior: str = option("normal", "posterior family (pyrovae families lists them)", metavar="FAMILY")
    prior: Optional[str] = option(None, "prior family (default: the posterior family's default prior)",
                                  metavar="NAME")
    likelihood: str = option("bernoulli", "decoder likelihood (pyrovae families lists them)", metavar="NAME")
    conditional: str = option("none", "none, prior (N(mu_y, I), Su 2018, eq. 8) or full (CVAE)", metavar="MODE")
    num_classes: Optional[int] = option(None, "label classes of a conditional run, taken from the data",
                                        flag=None)
    arch: str = option("mlp", "encoder/decoder architecture: mlp, or conv for image data (docs/models.md)",
                       metavar="NAME")

    def __post_init__(self) -> None:
        self.hidden = compact_hidden(self.hidden)  # config.json stores lists
        self.latent_dim = self.latent_dim if isinstance(self.latent_dim, int) else tuple(self.latent_dim)
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
        if "arch" not in d and d.get("posterior") in FORMER_POSTERIORS:  # a run from before these models
            d["posterior"] = FORMER_POSTERIORS[d["posterior"]]
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
            value = compact_hidden(value) if key == "hidden" else value
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

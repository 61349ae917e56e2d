"""Training options, declared once: the dataclass that ``fit``, ``config.json`` and the CLI share.

Each option is a dataclass field made by :func:`option`, which carries its
help text, its check and whether it may change when a run is resumed. From
that one declaration:

* ``fit(..., lr=1e-4)`` accepts it as a keyword and validates it
  (:meth:`TrainOptions.with_overrides`);
* ``config.json`` stores it (:class:`~pyrovae.config.RunConfig` extends
  :class:`TrainOptions` with the data and model options);
* ``pyrovae train --lr 1e-4`` gets a flag with that help (:func:`add_flags`);
* the options table in ``docs/cli.md`` is generated from it (:func:`options_table`).

Adding an option is one field here plus the code that uses it (see
docs/cli.md, "Adding a training option").
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import torch

from .errors import PyroVAEError
from .estimators import ESTIMATORS
from .fastpath import OPTIMIZERS, STEPS
from .klweight import check_kl_weighting
from .registry import Registry
from .validation import check_positive, check_positive_number

#: A check: ``check(flag_name, value)`` raises :class:`PyroVAEError` for a bad value.
Check = Callable[[str, Any], None]


@dataclass(frozen=True)
class OptionSpec:
    """What :func:`option` declares besides the default.

    :param help: one line for ``--help`` and the generated docs table.
    :param doc: more Markdown for the docs table only (optional).
    :param flag: the command-line flag; ``""`` derives ``--name-with-dashes``; None: no flag.
    :param parse: argparse ``type`` (default: the field's own type); ``bool`` makes a switch.
    :param check: validation, run whenever the options are built (CLI, config.json, ``fit``).
    :param resumable: whether ``--resume`` may change it (it does not change the numbers computed).
    :param metavar: the value's name in ``--help``.
    """

    help: str
    doc: str = ""
    flag: Optional[str] = ""
    parse: Optional[Callable[[str], Any]] = None
    check: Optional[Check] = None
    resumable: bool = False
    metavar: Optional[str] = None


def option(default: Any, help: str, **spec: Any) -> Any:
    """A dataclass field that is a training option (see :class:`OptionSpec` for ``spec``)."""
    return dataclasses.field(default=default, metadata={"option": OptionSpec(help, **spec)})


def spec_of(f: dataclasses.Field) -> Optional[OptionSpec]:
    """The :class:`OptionSpec` of a dataclass field (None for a field that is not an option)."""
    return f.metadata.get("option")


def flag_name(name: str) -> str:
    """The flag spelling of a field name: ``batch_size`` -> ``batch-size``."""
    return name.replace("_", "-")


def label(f: dataclasses.Field) -> str:
    """How messages name an option: its flag without dashes (``particles`` for ``num_particles``)."""
    spec = spec_of(f)
    return (spec.flag if spec is not None and spec.flag else flag_name(f.name)).lstrip("-")


# -- checks ------------------------------------------------------------------------------------


def positive(name: str, value: Any) -> None:
    """A positive ``int``."""
    check_positive(**{name: value})


def non_negative(name: str, value: Any) -> None:
    """An ``int`` >= 0."""
    integer(name, value)
    if value < 0:
        raise PyroVAEError(f"{name} must be 0 or more, got {value!r}")


def positive_number(name: str, value: Any) -> None:
    """A finite number > 0."""
    check_positive_number(name, value)


def optional(check: Check) -> Check:
    """``check``, or None."""
    return lambda name, value: None if value is None else check(name, value)


class registered:
    """A check: a name in ``registry`` (or one of ``extra``, e.g. ``"auto"``); ``--help`` lists them."""

    def __init__(self, registry: Registry, extra: Tuple[str, ...] = ()) -> None:
        self.registry, self.extra = registry, extra

    def __call__(self, name: str, value: Any) -> None:
        if value not in self.extra:
            self.registry.check(value)

    def names(self) -> Tuple[str, ...]:
        """Every accepted name."""
        return (*self.extra, *self.registry.names())


def integer(name: str, value: Any) -> None:
    """Any ``int`` (not ``bool``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PyroVAEError(f"{name} must be an integer, got {value!r}")


def count(text: str) -> int:
    """A whole number as the command line may spell it: ``3000000``, ``3e6``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(value)


def device_name(name: str, value: Any) -> None:
    """``auto`` or a torch device string; whether the device exists is checked when training starts."""
    try:
        if value != "auto":
            torch.device(value)
    except (RuntimeError, TypeError):
        raise PyroVAEError(f"unknown device {value!r}; use auto, cpu, cuda or cuda:N") from None


# -- the options --------------------------------------------------------------------------------


@dataclass
class TrainOptions:
    """How ``fit`` trains: every training option with its default (the documented CLI default)."""

    estimator: str = option("auto", "ELBO estimator", check=registered(ESTIMATORS), metavar="NAME",
                            doc="`auto` uses the closed-form KL where one exists (SGVB-B, the AEVB paper's eq. 7, "
                                "for the default model) and samples it elsewhere; `analytic` is strict. See "
                                "[estimators](estimators.md).")
    num_particles: int = option(1, "samples L per data point per step (K for iwae and dreg)", flag="--particles",
                                check=positive, metavar="L")
    epochs: int = option(10, "total epochs of the run", check=positive, resumable=True, metavar="E",
                         doc="With `--resume` this is the new total.")
    samples: Optional[int] = option(None, "stop after this many training samples, inside an epoch if need be "
                                    "(default: the epochs decide)", parse=count, check=optional(positive),
                                    resumable=True, metavar="S",
                                    doc="Given, it replaces `--epochs` as the budget: the run stops after the first "
                                        "minibatch at which it has seen S rows, and a resume continues to a new S "
                                        "exactly. See [compare at scale](compare.md#a-budget-in-samples).")
    curve_points: int = option(0, "record train and test ELBO at this many log-spaced points of samples seen",
                               check=non_negative, resumable=True, metavar="P",
                               doc="The curves of the AEVB paper's Figure 2; each point is also a checkpoint.")
    batch_size: int = option(100, "minibatch size M", check=positive, metavar="M")
    lr: float = option(1e-3, "learning rate (a resume may lower it for fine-tuning)", check=positive_number,
                       resumable=True, metavar="LR")
    optimizer: str = option("adam", "optimizer (adagrad is the paper's)", check=registered(OPTIMIZERS),
                            metavar="NAME")
    device: str = option("auto", "auto (CUDA if present), cpu, cuda or cuda:N", check=device_name,
                         resumable=True, metavar="DEV")
    threads: Optional[int] = option(None, "CPU threads of the training step (default: torch's, one per rank "
                                    "under torchrun on CPU)", check=optional(positive), resumable=True, metavar="T",
                                    doc="Set when training starts and restored when it ends. On a machine where "
                                        "another CPU-bound process runs, fewer threads than cores keep epochs "
                                        "from stalling; see [performance](performance.md#contention).")
    keep_denormals: bool = option(False, "keep subnormal floats while training on a CPU (default: flushed to zero, "
                                  "as XLA does; iwae and dreg run up to 3x faster)", resumable=True,
                                  doc="Set when training starts and restored when it ends; see "
                                      "[performance](performance.md#subnormal-numbers).")
    seed: int = option(0, "seeds the weights, data order, binarization and estimator noise", check=integer,
                       metavar="S")
    beta: float = option(1.0, "KL weight of the training loss recon + beta * KL (Higgins et al. 2017)",
                         metavar="B")
    kl_warmup_epochs: int = option(0, "raise the KL weight linearly from 0 to beta over this many epochs",
                                   metavar="E")
    step: str = option("auto", "how a training step runs", resumable=True,
                       check=registered(STEPS, ("auto",)), metavar="NAME")
    clip_grad_norm: Optional[float] = option(None, "clip the total gradient norm to MAX (default: no clipping)",
                                             check=optional(positive_number), metavar="MAX")
    checkpoint_every: Optional[int] = option(None, "also checkpoint every N steps (default: every epoch only)",
                                             check=optional(positive), resumable=True, metavar="N")
    tensorboard: bool = option(False, "log scalars and image grids to RUN/tensorboard (needs tensorboard)",
                               resumable=True)

    def __post_init__(self) -> None:
        for f, spec in options_of(type(self)):
            if spec.check is not None:
                spec.check(label(f), getattr(self, f.name))
        self._check_together()

    def _check_together(self) -> None:
        """The checks that involve more than one option."""
        check_kl_weighting(self.beta, self.kl_warmup_epochs)
        if (self.beta != 1 or self.kl_warmup_epochs) and not ESTIMATORS[self.estimator].kl_weighting:
            raise PyroVAEError(f"estimator {self.estimator!r} has no separate KL term for beta or a KL warm-up "
                               "to weight; use mc, analytic, auto or stl")

    def training(self) -> "TrainOptions":
        """Just the training options (of a :class:`~pyrovae.config.RunConfig`, say)."""
        return TrainOptions(**{f.name: getattr(self, f.name) for f in dataclasses.fields(TrainOptions)})

    def with_overrides(self, overrides: Mapping[str, Any]) -> "TrainOptions":
        """A copy with ``overrides`` applied and validated; an unknown name is a :class:`PyroVAEError`."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise PyroVAEError(f"unknown training option{'s' * (len(unknown) > 1)} {', '.join(unknown)}; "
                               f"the options are {', '.join(sorted(known))}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def options_of(cls: type) -> Iterator[Tuple[dataclasses.Field, OptionSpec]]:
    """The option fields of an options dataclass, in declaration order."""
    for f in dataclasses.fields(cls):
        spec = spec_of(f)
        if spec is not None:
            yield f, spec


# -- the command line ------------------------------------------------------------------------


def _flag(f: dataclasses.Field, spec: OptionSpec) -> str:
    return spec.flag or f"--{flag_name(f.name)}"


def _value_type(f: dataclasses.Field, owner: type) -> Any:
    """``int`` for ``Optional[int]``, etc.: the type a flag's text is parsed into."""
    hint = typing.get_type_hints(owner)[f.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def add_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One flag per option of ``cls`` that has one. Every flag defaults to None, so the options the
    user actually passed can be told apart (:func:`given_options`)."""
    for f, spec in options_of(cls):
        if spec.flag is None:
            continue
        parse = spec.parse or _value_type(f, cls)
        text = help_text(f, spec)
        if parse is bool:
            parser.add_argument(_flag(f, spec), dest=f.name, action="store_const", const=not f.default,
                                default=None, help=spec.help)
        else:
            parser.add_argument(_flag(f, spec), dest=f.name, type=parse, default=None, help=text,
                                metavar=spec.metavar)


def shown(value: Any) -> str:
    """A default as the command line spells it."""
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    if value is None or isinstance(value, bool):
        return {None: "none", True: "on", False: "off"}[value]
    return f"{value:g}" if isinstance(value, float) else str(value)


def help_text(f: dataclasses.Field, spec: OptionSpec) -> str:
    """``--help`` of an option: its help, the names it accepts, its default."""
    names = spec.check.names() if isinstance(spec.check, registered) else ()
    text = spec.help + (f": {', '.join(names)}" if names else "")
    return text if "default" in spec.help or f.type == "bool" else f"{text} (default {shown(f.default)})"


def help_of(cls: type, name: str) -> str:
    """The declared help of option ``name`` of ``cls``, for a flag another command shares."""
    f = next(f for f, _ in options_of(cls) if f.name == name)
    return spec_of(f).help


def given_options(args: argparse.Namespace, cls: type) -> Dict[str, Any]:
    """The options of ``cls`` the user passed on the command line."""
    names = {f.name for f, _ in options_of(cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def resumable(cls: type) -> Tuple[str, ...]:
    """The options of ``cls`` that ``--resume`` may change."""
    return tuple(f.name for f, spec in options_of(cls) if spec.resumable)


def options_table(cls: type) -> Tuple[List[str], List[List[str]]]:
    """``(header, rows)``: flag, default, meaning and whether it may change on resume, for the docs."""
    rows = []
    for f, spec in options_of(cls):
        if spec.flag is None:
            continue
        flag = _flag(f, spec) + ("" if spec.metavar is None else f" {spec.metavar}")
        default = shown(f.default)
        names = spec.check.names() if isinstance(spec.check, registered) else ()
        meaning = spec.help + (f": {', '.join(names)}" if names else "") + "." + (f" {spec.doc}" if spec.doc else "")
        rows.append([flag, default, meaning, "yes" if spec.resumable else "no"])
    return ["Flag", "Default", "Meaning", "May change on --resume"], rows

"""The typed configuration of a training run, with a JSON round trip.

One :class:`RunConfig` holds every ``pyrovae train`` flag. It is written to
``config.json`` in the run folder and read back by ``evaluate`` and
``--resume``, so a run can always be rebuilt from its folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from .errors import PyroVAEError
from .klweight import check_kl_weighting
from .validation import check_positive, check_positive_number

#: Fields that may differ when resuming: more epochs, another device, step implementation or
#: checkpoint interval, TensorBoard on or off (none of them changes the numbers a run computes).
RESUMABLE_CHANGES = ("epochs", "device", "data_dir", "step", "checkpoint_every", "tensorboard")


@dataclass
class RunConfig:
    """Everything needed to rebuild and continue a run; defaults are the documented command-line defaults."""

    dataset: Optional[str] = "mnist-5k"  # None: in-memory data given to fit() from Python
    data_dir: Optional[str] = None
    binarize: str = "dynamic"
    latent_dim: int = 20
    hidden: Tuple[int, ...] = field(default=(400,))
    activation: str = "relu"
    posterior: str = "normal"
    prior: Optional[str] = None  # None: the posterior family's default prior
    likelihood: str = "bernoulli"
    estimator: str = "analytic"
    particles: int = 1
    epochs: int = 10
    batch_size: int = 100
    lr: float = 1e-3
    optimizer: str = "adam"
    device: str = "auto"
    seed: int = 0
    # prior: N(mu_y, I), eq. 8 of Su Jianlin, "Variational autoencoders (1)", 2018
    conditional: str = "none"  # none, prior (Su 2018, eq. 8) or full (CVAE); see pyrovae.conditional
    num_classes: Optional[int] = None  # label classes of a conditional run, taken from the data
    beta: float = 1.0  # KL weight of beta-VAE (Higgins et al. 2017): recon + beta * KL
    kl_warmup_epochs: int = 0  # linear KL warm-up from 0 to beta over this many epochs
    tensorboard: bool = False
    step: str = "auto"  # how a training step runs: auto, jit, cuda-graph or eager (fastpath.STEPS)
    clip_grad_norm: Optional[float] = None  # None: no gradient clipping
    checkpoint_every: Optional[int] = None  # None: a checkpoint at the end of every epoch only

    def __post_init__(self) -> None:
        self.hidden = tuple(self.hidden)
        check_kl_weighting(self.beta, self.kl_warmup_epochs)
        # Flag spelling (latent-dim), since these values usually come from the command line.
        sizes = ["latent_dim", "particles", "epochs", "batch_size"]
        if self.checkpoint_every is not None:
            sizes.append("checkpoint_every")
        check_positive(**{name.replace("_", "-"): getattr(self, name) for name in sizes})
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hidden):
            raise PyroVAEError(f"hidden sizes must be positive integers, got {list(self.hidden)}")
        check_positive_number("lr", self.lr)
        check_positive_number("clip-grad-norm", self.clip_grad_norm, optional=True)

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "RunConfig":
        """Rebuild from :meth:`to_dict`'s output; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise PyroVAEError(f"config has unknown keys: {', '.join(unknown)}")
        return cls(**d)

    def conflicts(self, requested: Dict[str, Any]) -> Dict[str, Tuple[Any, Any]]:
        """Fields in ``requested`` that differ from this config and may not change on resume."""
        out = {}
        for key, value in requested.items():
            value = tuple(value) if key == "hidden" else value
            if key not in RESUMABLE_CHANGES and getattr(self, key) != value:
                out[key] = (getattr(self, key), value)
        return out

    def resumed_with(self, requested: Dict[str, Any], source: str) -> "RunConfig":
        """This stored config with the resumable fields of ``requested`` applied.

        :raises PyroVAEError: naming every flag in ``requested`` that disagrees with ``source``
            (the stored ``config.json``) and may not change on resume.
        """
        clash = self.conflicts(requested)
        if clash:
            what = ", ".join(f"--{k.replace('_', '-')} {new!r} (run has {old!r})" for k, (old, new) in clash.items())
            raise PyroVAEError(f"--resume: the command line disagrees with {source}: {what}")
        return dataclasses.replace(self, **{k: requested[k] for k in RESUMABLE_CHANGES if k in requested})

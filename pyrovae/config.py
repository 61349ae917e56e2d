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

#: Fields that may differ when resuming: more epochs, another device or step implementation,
#: TensorBoard on or off.
RESUMABLE_CHANGES = ("epochs", "device", "data_dir", "step", "tensorboard")


@dataclass
class RunConfig:
    """Everything needed to rebuild and continue a run; defaults follow SPEC section 2."""

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
    conditional: str = "none"  # none, prior (seed 000 eq. 8) or full (CVAE); see pyrovae.conditional
    num_classes: Optional[int] = None  # label classes of a conditional run, taken from the data
    beta: float = 1.0  # KL weight of seed 004: recon + beta * KL
    kl_warmup_epochs: int = 0  # linear KL warm-up from 0 to beta over this many epochs
    tensorboard: bool = False
    step: str = "auto"  # how a training step runs: auto, jit, cuda-graph or eager (fastpath.STEPS)

    def __post_init__(self) -> None:
        self.hidden = tuple(self.hidden)
        check_kl_weighting(self.beta, self.kl_warmup_epochs)
        for name in ("latent_dim", "particles", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PyroVAEError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hidden):
            raise PyroVAEError(f"hidden sizes must be positive integers, got {list(self.hidden)}")
        if not self.lr > 0:
            raise PyroVAEError(f"lr must be positive, got {self.lr!r}")

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

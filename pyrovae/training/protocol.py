"""What ``fit`` needs from a model, and what it uses where the model offers more.

``fit`` trains any :class:`torch.nn.Module` that follows the :class:`TrainableModel`
protocol, the convention of pyrovae's :class:`~pyrovae.vae.VAE`: ordinary Pyro ``model``
and ``guide`` methods that take the data rows ``x`` and the minibatch indices
``subsample`` (for ``pyro.plate(..., subsample=subsample)``). Everything else is optional,
and ``fit`` uses it where it is there:

=====================================  ===============================================  =====================
hook                                   used for                                         without it
=====================================  ===============================================  =====================
``check_data(x, what)``                refusing rows outside the likelihood's support   finite numbers only
``check_labels(y, n, what)``           the labels ``y`` the programs take (or None)     labels passed as ``y``
``kl_weight`` / ``kl_weighted(w)``     beta and the KL warm-up                          ``beta=1`` only
``recording_key()``                    recording one step per Python constant           one recording
``data_plate``                         the plate a data-parallel rank shards            ``"data"``
=====================================  ===============================================  =====================
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Optional, Protocol, runtime_checkable

import torch

from ..config import RunConfig
from ..errors import PyroVAEError
from ..validation import check_labels
from ..vae import VAE


@runtime_checkable
class TrainableModel(Protocol):
    """A module ``fit`` can train: Pyro programs over the rows ``x[subsample]``.

    Both programs take the same arguments; ``data`` holds the rows' labels ``y`` when the
    model takes labels. The model should put the rows in
    ``pyro.plate("data", len(x), subsample=subsample)`` so that the loss is scaled by
    ``N/M`` (Kingma & Welling 2013, eq. 8).
    """

    def parameters(self, recurse: bool = True) -> Any:
        """The module's parameters (``torch.nn.Module`` provides it)."""

    def model(self, x: torch.Tensor, subsample: Optional[torch.Tensor] = None, **data: torch.Tensor) -> Any:
        """p(x, z): the prior and the likelihood of the rows ``x[subsample]``."""

    def guide(self, x: torch.Tensor, subsample: Optional[torch.Tensor] = None, **data: torch.Tensor) -> Any:
        """q(z | x): the variational distribution of the same latent sites."""


def check_model(model: Any) -> None:
    """Refuse, in one line, anything that is not a module with Pyro ``model`` and ``guide`` methods."""
    missing = [name for name in ("model", "guide") if not callable(getattr(model, name, None))]
    if not isinstance(model, torch.nn.Module) or missing:
        what = f"has no {' or '.join(missing)} method" if missing else "is not a torch.nn.Module"
        raise PyroVAEError(f"fit trains a torch.nn.Module with Pyro model(x, subsample) and guide(x, subsample) "
                           f"methods; the {type(model).__name__} given {what}")
    if not any(True for _ in model.parameters()):
        raise PyroVAEError(f"{type(model).__name__} has no parameters to train (register its networks and "
                           "pyro.nn.PyroParam values as module attributes)")


def check_data(model: Any, x: torch.Tensor, what: str) -> None:
    """The model's own data check (shape and likelihood support) where it has one."""
    check = getattr(model, "check_data", None)
    if check is not None:
        check(x, what)


def labels_for(model: Any, labels: Any, x: Optional[torch.Tensor], what: str) -> Optional[torch.Tensor]:
    """The checked labels the programs take (on ``x``'s device), or None when they take none."""
    if x is None:
        return None
    check = getattr(model, "check_labels", None)
    if check is not None:
        y = check(labels, len(x), what)
    else:
        y = None if labels is None else check_labels(labels, len(x), what)
    return None if y is None else y.to(x.device)


def as_data(y: Optional[torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The programs' keyword arguments for labels ``y`` (none without labels)."""
    return {} if y is None else {"y": y}


def supports_kl_weight(model: Any) -> bool:
    """Whether the model weights its KL (``kl_weight`` and ``kl_weighted``), as beta and warm-up need."""
    return hasattr(model, "kl_weight") and callable(getattr(model, "kl_weighted", None))


def set_kl_weight(model: Any, weight: float) -> None:
    """Set the KL weight of a model that has one (others train the plain ELBO; fit checked beta = 1)."""
    if supports_kl_weight(model):
        model.kl_weight = weight


def kl_weight_restored(model: Any) -> contextlib.AbstractContextManager:
    """Restores the model's own KL weight when the block ends (the loop sets one per epoch)."""
    return model.kl_weighted(model.kl_weight) if supports_kl_weight(model) else contextlib.nullcontext()


def run_config(model: Any, options: Any, dynamic: bool) -> Dict[str, Any]:
    """``config.json`` of a run trained from Python: the options, and the VAE's make-up where it is a VAE."""
    if not isinstance(model, VAE):
        return {"dataset": None, "model": type(model).__name__, **options.to_dict()}
    names = model.names
    return RunConfig(**options.to_dict(), dataset=None, binarize="dynamic" if dynamic else "none",
                     latent_dim=model.z_dim, hidden=model.hidden, activation=names["activation"],
                     posterior=names["posterior"], prior=names["prior"], likelihood=names["likelihood"],
                     conditional=names["conditional"], num_classes=model.num_classes, arch=names["arch"]).to_dict()

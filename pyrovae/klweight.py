"""beta-weighted KL and the linear KL warm-up.

beta-VAE (Higgins et al. 2017, "beta-VAE: Learning Basic Visual Concepts with
a Constrained Variational Framework") trains with ``loss = recon + beta * KL``.
In Pyro the KL is not one term of the model: under ``mc`` (Trace_ELBO) it is
``log q(z|x) - log p(z)`` from two sites, and under ``analytic``
(TraceMeanField_ELBO) it is ``kl_divergence(q, p)`` scaled by the **guide**
site's scale alone. So the weight multiplies the log-density of the latent
site ``z`` in both the model and the guide (:class:`KLWeight`), which gives
``recon + beta * KL`` under every ELBO estimator, closed-form KL or not.

The warm-up (Bowman et al. 2016, "Generating Sentences from a Continuous
Space"; Sonderby et al. 2016, "Ladder Variational Autoencoders") anneals the
weight linearly from 0 to ``beta`` over the first epochs: :func:`linear_warmup`.
"""

from __future__ import annotations

import math
from typing import Callable

from pyro.poutine.messenger import Messenger

from .errors import PyroVAEError


class KLWeight(Messenger):
    """Multiply the log-density of every sample site inside by ``weight``.

    What :func:`pyro.poutine.scale` does, except that ``weight = 0`` is
    allowed (``poutine.scale`` refuses it): the first epoch of a warm-up
    trains with no KL at all.
    """

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = weight

    def _process_message(self, msg) -> None:
        msg["scale"] = self.weight * msg["scale"]


def check_kl_weighting(beta: float, warmup_epochs: int) -> None:
    """Raise :class:`PyroVAEError` unless ``beta`` is a finite number >= 0 and ``warmup_epochs`` an integer >= 0."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not (math.isfinite(beta) and beta >= 0):
        raise PyroVAEError(f"beta must be a finite number >= 0, got {beta!r}")
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
        raise PyroVAEError(f"kl-warmup-epochs must be an integer >= 0, got {warmup_epochs!r}")


def linear_warmup(beta: float = 1.0, warmup_epochs: int = 0) -> Callable[[int], float]:
    """The KL weight of each epoch: ``weight(e) = beta * min(1, e / E)`` for the 0-based epoch ``e``.

    The weight is constant within an epoch: 0 in the first, ``beta / E`` in the
    second, ..., and ``beta`` from epoch ``E + 1`` (1-based) on. With ``E = 0``
    it is ``beta`` throughout. It depends on the epoch counter only, which the
    checkpoint stores, so a resumed run follows the same schedule.
    """
    check_kl_weighting(beta, warmup_epochs)
    beta = float(beta)
    if warmup_epochs == 0:
        return lambda epoch: beta
    return lambda epoch: beta * min(1.0, epoch / warmup_epochs)

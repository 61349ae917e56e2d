"""The VampPrior (Tomczak & Welling 2018): a mixture of the posteriors of learned pseudo-inputs.

``p(z) = (1/K) sum_k q(z | u_k)`` (their eq. 9), where the ``K`` pseudo-inputs ``u_k`` are
parameters in data space pushed through the VAE's own encoder. The mixture is Pyro's
:class:`~pyro.distributions.MixtureSameFamily` over the posterior's batch of ``K``
distributions, so any posterior family whose distribution has a batch shape to mix works;
it has no closed-form KL with anything, so ``auto`` reports it ``sampled`` and ``analytic``
refuses it.

Mixed Normal posteriors (the usual case) get their log-density from one matrix product
(:class:`~pyrovae.families.mixture.NormalMixture`) instead of Pyro's broadcast over rows x components x dimensions: the
same numbers, tens of times faster, which is what makes the importance-sampled ``log p(x)`` of
a VampPrior VAE affordable (every one of the K samples of every row meets all 500 components).

The pseudo-inputs start uniform on ``[0, 1]``, the range of the grey-level images the image
likelihoods model: the prior is built with the VAE, before it sees data, so the initial weights
stay a function of the seed alone (Tomczak & Welling initialise near the data too).
"""

from __future__ import annotations

from typing import Optional

import pyro.distributions as dist
import torch
from torch import nn

from ..errors import PyroVAEError
from ..validation import check_positive
from .mixture import NormalMixture
from .registry import EncoderView, PriorSpec, register_prior

#: Pseudo-inputs of the registered ``vamp`` prior (Tomczak & Welling 2018 use 500 on MNIST).
DEFAULT_PSEUDO_INPUTS = 500


class VampPrior(nn.Module):
    """``p(z) = (1/K) sum_k q(z|u_k)`` with ``K`` learned pseudo-inputs ``u_k`` (Tomczak & Welling 2018, eq. 9).

    :param encoder: the VAE's :class:`~pyrovae.families.EncoderView`; only the pseudo-inputs are
        parameters of this module, the encoder's weights stay the VAE's.
    :param components: ``K``, the number of pseudo-inputs.
    :raises PyroVAEError: for a posterior whose distributions cannot be mixed, or an encoder that
        reads class labels (pseudo-inputs have none).
    """

    def __init__(self, encoder: EncoderView, components: int = DEFAULT_PSEUDO_INPUTS) -> None:
        super().__init__()
        check_positive(components=components)
        _check_mixable(encoder)
        self.pseudo_inputs = nn.Parameter(torch.rand(components, encoder.x_dim))
        self._encode = encoder.encode  # a plain attribute: no second registration of the encoder

    def forward(self, y: Optional[torch.Tensor] = None) -> dist.TorchDistribution:
        """The mixture, event shape ``(z_dim,)``; ``y`` is ignored (the VampPrior is unconditional)."""
        components = self._encode(self.pseudo_inputs)
        uniform = dist.Categorical(logits=self.pseudo_inputs.new_zeros(self.pseudo_inputs.shape[0]))
        return NormalMixture(uniform, components, validate_args=False)


def _check_mixable(encoder: EncoderView) -> None:
    """Refuse an encoder the VampPrior cannot use: one that reads labels, or a posterior with no batch to mix."""
    if encoder.labelled:
        raise PyroVAEError("the VampPrior's pseudo-inputs have no class labels; it cannot be used with "
                           "conditional 'full' (use --conditional none)")
    q = encoder.posterior(torch.zeros(2, encoder.head_size))
    try:
        ok = q.batch_shape == (2,) and dist.MixtureSameFamily(
            dist.Categorical(logits=torch.zeros(2)), q, validate_args=False) is not None
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise PyroVAEError(f"the VampPrior mixes the posterior's distributions, and {type(q).__name__} "
                           f"(batch shape {tuple(q.batch_shape)} for 2 rows) cannot be mixed; use another prior")


def vamp_prior(name: str, components: int = DEFAULT_PSEUDO_INPUTS) -> PriorSpec:
    """A VampPrior spec with ``components`` pseudo-inputs, to pass to ``register_prior``."""
    return PriorSpec(name, lambda z_dim, encoder: VampPrior(encoder, components), None,
                     f"VampPrior: mixture of q(z|u_k) over {components} learned pseudo-inputs "
                     "(Tomczak & Welling 2018)", uses_encoder=True)


register_prior(vamp_prior("vamp"))

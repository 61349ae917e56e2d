"""The VampPrior (Tomczak & Welling 2018): a mixture of the posteriors of learned pseudo-inputs.

``p(z) = (1/K) sum_k q(z | u_k)`` (their eq. 9), where the ``K`` pseudo-inputs ``u_k`` are
parameters in data space pushed through the VAE's own encoder. The mixture is Pyro's
:class:`~pyro.distributions.MixtureSameFamily` over the posterior's batch of ``K``
distributions, so any posterior family whose distribution has a batch shape to mix works;
it has no closed-form KL with anything, so ``auto`` reports it ``sampled`` and ``analytic``
refuses it.

Mixed Normal posteriors (the usual case) get their log-density from one matrix product
(:class:`VampMixture`) instead of Pyro's broadcast over rows x components x dimensions: the
same numbers, tens of times faster, which is what makes the importance-sampled ``log p(x)`` of
a VampPrior VAE affordable (every one of the K samples of every row meets all 500 components).

The pseudo-inputs start uniform on ``[0, 1]``, the range of the grey-level images the image
likelihoods model: the prior is built with the VAE, before it sees data, so the initial weights
stay a function of the seed alone (Tomczak & Welling initialise near the data too).
"""

from __future__ import annotations

import math
from typing import Optional

import pyro.distributions as dist
import torch
from torch import nn

from ..errors import PyroVAEError
from ..validation import check_positive
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
        return VampMixture(uniform, components, validate_args=False)


class VampMixture(dist.MixtureSameFamily):
    """Pyro's :class:`~pyro.distributions.MixtureSameFamily`, whose ``log_prob`` of diagonal Normal
    components is computed as one matrix product.

    For component ``k`` with means ``mu_k`` and precisions ``p_k = 1 / sigma_k^2``,
    ``sum_d p_kd (z_d - mu_kd)^2 = (z^2) . p_k - 2 z . (mu_k p_k) + mu_k^2 . p_k``: one product of
    ``[z^2, z]`` (``(n, 2D)``) with a ``(2D, K)`` matrix instead of an ``(n, K, D)`` broadcast. The
    expansion subtracts large terms when a component is narrow, so it is evaluated in float64
    (float32's rounding of ``z^2 p`` would reach 1e-3 nats for ``sigma = 0.01``) and the result
    is cast back to the points' dtype. Other component families use Pyro's own ``log_prob``.
    """

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        shared = _shared_normal_components(self)
        if shared is None:
            return super().log_prob(value)
        loc, scale, logits = (t.double() for t in shared)
        precision = scale.pow(-2)
        z = value.double().expand(torch.broadcast_shapes(value.shape, self.batch_shape + self.event_shape))
        # log w_k - log((2 pi)^(D/2) prod_d sigma_kd) - mu_k^2 . p_k / 2: what does not depend on z.
        constant = (torch.log_softmax(logits, -1) - scale.log().sum(-1)
                    - 0.5 * loc.shape[-1] * math.log(2 * math.pi) - 0.5 * (loc * loc * precision).sum(-1))
        # [z^2, z] @ [-p / 2, mu p]^T: every component's z-dependent terms in one product.
        log_joint = torch.cat([z * z, z], -1) @ torch.cat([-0.5 * precision, loc * precision], -1).T + constant
        return torch.logsumexp(log_joint, -1).to(value.dtype)


def _shared_normal_components(mixture: dist.MixtureSameFamily):
    """``(loc, scale, logits)`` of shapes ``(K, D)``, ``(K, D)``, ``(K,)`` when the components are
    independent Normals shared by the whole batch (a plate expands the mixture without copying:
    stride 0 along the batch); None otherwise."""
    components = mixture.component_distribution
    base = getattr(components, "base_dist", None)
    if not (isinstance(components, dist.Independent) and type(base) in (dist.Normal, torch.distributions.Normal)
            and components.reinterpreted_batch_ndims == 1):
        return None
    batch = len(mixture.batch_shape)
    tensors = (base.loc, base.scale, mixture.mixture_distribution.logits)
    if any(t.dim() != batch + d or any(t.stride(i) != 0 and t.shape[i] != 1 for i in range(batch))
           for t, d in zip(tensors, (2, 2, 1))):
        return None
    return tuple(t[(0,) * batch] for t in tensors)


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

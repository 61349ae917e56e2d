"""A ``differentiable_loss`` with no host synchronization, shared by pyrovae's Trace-based ELBOs.

Pyro's :meth:`~pyro.infer.Trace_ELBO.differentiable_loss` returns
``loss + (surrogate - surrogate.item())`` and its particle functions call
``.item()`` on every site's log-density. Each ``.item()`` makes the host wait
for the device; on a GPU the step then runs at the speed of its Python, and a
CUDA graph cannot be captured at all; under ``torch.jit.trace`` the ``.item()``
values are frozen into the graph as constants. The mixin below keeps Pyro's
traces and its value/gradient split, but with tensors end to end: the
particle functions of the estimators that use it return a *detached tensor*
for the loss, and the loss is assembled as ``loss + (surrogate - surrogate.detach())``,
which has the loss's value and the surrogate's gradient.
"""

from __future__ import annotations

import torch
from pyro.distributions.util import is_identically_zero
from pyro.infer.util import torch_item

from .particles import ParticleErrors


def pathwise(guide_trace) -> bool:
    """Whether every guide sample site is reparameterized (no score-function term).

    Then Pyro's surrogate ELBO *is* the ELBO: each site's entropy term is its
    ``log q``, and nothing else enters the surrogate.
    """
    return all(is_identically_zero(site["score_parts"].score_function)
               for site in guide_trace.nodes.values() if site["type"] == "sample")


def loss_pair(elbo) -> tuple:
    """``(loss, surrogate loss)`` of one particle from its ELBO: the value detached, the surrogate not.

    An empty program's ELBO is the number 0 (Pyro's ``Trace.log_prob_sum`` of no sites); it
    becomes a tensor here, so every estimator returns 0 for it, as Pyro's ELBOs do.
    """
    elbo = torch.as_tensor(elbo)
    return -elbo.detach(), -elbo


class SyncFreeLoss(ParticleErrors):
    """Mixin for Pyro ELBOs whose ``_differentiable_loss_particle`` returns tensors.

    Put it before the Pyro base class. ``loss`` and ``loss_and_grads`` still
    return Python floats, as Pyro's :class:`~pyro.infer.SVI` expects.
    """

    def differentiable_loss(self, model, guide, *args, **kwargs):
        """The loss as a tensor (mean over particles) whose gradient is the estimator's; no ``.item()``."""
        loss, surrogate = 0.0, 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            loss_particle, surrogate_particle = self._differentiable_loss_particle(model_trace, guide_trace)
            loss = loss + loss_particle / self.num_particles
            surrogate = surrogate + surrogate_particle / self.num_particles
        return loss + (surrogate - surrogate.detach())

    def loss(self, model, guide, *args, **kwargs) -> float:
        """The loss as a Python float, as :meth:`pyro.infer.ELBO.loss` promises."""
        return torch_item(super().loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """Accumulate the gradients into ``.grad``; return the loss as a Python float."""
        return torch_item(super().loss_and_grads(model, guide, *args, **kwargs))

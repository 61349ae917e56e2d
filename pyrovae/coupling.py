"""Which latent sites may take a closed-form KL: the ones whose prior does not see their own sample.

The closed-form route of the AEVB paper (Kingma & Welling 2013, eq. 7) replaces
``E_q[log q(z|.) - log p(z|.)]`` by ``KL(q(z|.) || p(z|.))``. That is exact only
when, given what the guide drew *before* ``z``, neither distribution depends on
``z`` itself. A bottom-up guide ``q(z1|x) q(z2|z1)`` of a top-down model
``p(z2) p(z1|z2)`` breaks it at ``z1``: the model's ``p(z1|z2)`` is evaluated at
``z2 ~ q(z2|z1)``, which was computed *from* ``z1``, so the expectation over
``z1`` also moves ``p``'s parameters and the closed form at a fixed ``z2`` is a
biased ELBO. The top site ``z2`` is fine: ``p(z2)`` sees nothing of the guide.

Whether a model site depends on its own guide sample is a property of the
data flow, not of the pair of distributions, so :mod:`pyrovae.kl` cannot see it.
:func:`coupled_sites` finds it with Pyro's provenance tracking
(:mod:`pyro.ops.provenance`): it replays the guide on the values of a trace,
tags each value with the names of every guide site it was computed from, replays
the model on those tagged values, and reads which names reach the parameters of
each model site. Nothing is sampled (no random stream is used) and no gradient is
recorded, so a training step that runs it once gives the same numbers as one
that does not.
"""

from __future__ import annotations

from typing import FrozenSet, Hashable, Tuple

import torch
from pyro import poutine
from pyro.ops.provenance import ProvenanceTensor, detach_provenance, get_provenance
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

from .kl import _structure

__all__ = ["coupled_sites", "structure_key"]


class _Lineage(Messenger):
    """Tags every sample value with its own name and the names of the sites its distribution read."""

    def _pyro_post_sample(self, msg) -> None:
        if site_is_subsample(msg):
            return
        value = detach_provenance(msg["value"])
        parents = get_provenance(msg["fn"].log_prob(value))  # the sites that reach q's parameters
        msg["value"] = ProvenanceTensor(value, parents | {msg["name"]})


def _reads(site) -> FrozenSet[str]:
    """The sites whose (tagged) values reach this site's distribution parameters."""
    return get_provenance(site["fn"].log_prob(detach_provenance(site["value"])))


@torch.no_grad()
def coupled_sites(model, guide, guide_trace, *args, **kwargs) -> FrozenSet[str]:
    """Latent sites whose model distribution depends on guide samples computed from the site itself.

    At such a site ``E_q[log q - log p]`` is not ``KL(q || p)`` with ``p``'s parameters held
    fixed, so a closed-form KL there would bias the ELBO; elsewhere it is exact.

    :param model: the Pyro model, called as ``model(*args, **kwargs)``.
    :param guide: the guide that made ``guide_trace``, called the same way.
    :param guide_trace: a trace of ``guide``; its values are replayed (nothing is drawn).
    :returns: the names of the coupled sites (empty for a one-layer VAE).
    """
    with _Lineage():  # outside the trace, so that the trace records the tagged values
        tagged = poutine.trace(poutine.replay(guide, trace=guide_trace)).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=tagged)).get_trace(*args, **kwargs)
    return frozenset(name for name, site in model_trace.nodes.items()
                     if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)
                     and name in tagged.nodes and name in _reads(site))


def structure_key(model_trace, guide_trace) -> Tuple[Hashable, ...]:
    """What :func:`coupled_sites` is memoized on: the order and structure of both programs' sites.

    The data flow between sites is a property of the program, and a program with the same sites
    in the same order with the same distribution classes is taken to be the same program.
    """
    return tuple((name, _structure(site["fn"]))
                 for trace in (model_trace, guide_trace) for name, site in trace.nodes.items()
                 if site["type"] == "sample")

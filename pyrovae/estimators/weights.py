"""Per-data-point importance log weights from one vectorized (model, guide) trace pair.

The IWAE bound is ``sum_i log(1/K sum_k w_ik)``: one log-mean-exp *per data
point* (Burda et al. 2015, eq. 8 applied to i.i.d. data). Pyro's RenyiELBO
sums each particle's log weight over the whole minibatch first, giving
``log(1/K sum_k prod_i w_ik)``, a different and looser bound when latents are
local. Here a plate dimension is *local* when every latent site lives in it;
log densities are summed over all other dimensions before the log-mean-exp.
"""

from __future__ import annotations

from typing import Optional, Set, Tuple

import torch
from pyro.distributions.util import detach
from pyro.poutine.util import prune_subsample_sites

from ..errors import PyroVAEError

PARTICLE_PLATE = "num_particles_vectorized"  # the name Pyro's ELBO gives its particle plate


def latent_names(model_trace) -> list:
    """Names of the model's latent sample sites."""
    return [n for n, s in model_trace.nodes.items() if s["type"] == "sample" and not s["is_observed"]]


def _plate_dims(site) -> Set[int]:
    return {f.dim for f in site["cond_indep_stack"] if f.vectorized and f.name != PARTICLE_PLATE}


def _reduce(lp: torch.Tensor, keep: Set[int], nesting: int) -> torch.Tensor:
    """Pad ``lp`` to ``(K, *plates)`` and sum every plate dimension not in ``keep``."""
    lp = lp.reshape((1,) * (nesting + 1 - lp.dim()) + lp.shape)
    for d in range(-nesting, 0):
        if d not in keep:
            lp = lp.sum(d, keepdim=True)
    return lp


def check_reparameterized(guide_trace, estimator: str) -> None:
    """Refuse guide sites without ``rsample``: these estimators use path gradients only."""
    for name, site in guide_trace.nodes.items():
        if site["type"] == "sample" and not site["fn"].has_rsample:
            raise PyroVAEError(f"estimator {estimator!r} needs reparameterized guide sites; "
                               f"site {name!r} ({type(site['fn']).__name__}) has no rsample")


def local_log_weights(model_trace, guide_trace, max_plate_nesting: int,
                      detach_guide: bool = False) -> Tuple[torch.Tensor, float]:
    """``(log w, scale)``: ``log w`` has shape ``(K, *plates)`` with size 1 on non-local plates.

    ``scale`` is the subsample factor N/M of the local plates (1 without subsampling): the
    bound of the full data set is ``scale * sum_local logmeanexp_k log w``. With
    ``detach_guide`` the guide densities see stopped distribution parameters (the
    sticking-the-landing form of ``log q``), while ``z`` keeps its path gradient.
    """
    model_trace, guide_trace = prune_subsample_sites(model_trace), prune_subsample_sites(guide_trace)
    latents = latent_names(model_trace)
    local = set.intersection(*(_plate_dims(guide_trace.nodes[n]) for n in latents)) if latents else set()
    scale = float(guide_trace.nodes[latents[0]]["scale"]) if latents else 1.0
    total: Optional[torch.Tensor] = None
    for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
        for site in trace.nodes.values():
            if site["type"] != "sample":
                continue
            fn = detach(site["fn"]) if detach_guide and sign < 0 else site["fn"]
            lp = fn.log_prob(site["value"])
            if site["mask"] is not None:
                lp = lp * site["mask"]
            # Non-local plates keep their own subsampling factor relative to the local one.
            lp = _reduce(lp * (float(site["scale"]) / scale), local, max_plate_nesting)
            total = sign * lp if total is None else total + sign * lp
    return total, scale

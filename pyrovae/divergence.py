"""Naming what went wrong when training produces NaN or infinity.

The training loop stays free of host syncs: it only stores each step's loss
on the device. At every checkpoint (and at the end of every epoch) one check
looks at those losses, the parameters and the optimizer state together
(:func:`all_finite`). When it fails, the trainer replays the steps since the
last good state, checking each one, and this module explains the first bad
step: which ELBO term was non-finite (the reconstruction ``log p(x|z)`` or the
KL at a latent site), which networks' gradients were, or whether the update
itself overflowed.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch

from .errors import PyroVAEError
from .evaluate import trace_terms
from .validation import all_finite, one_line

#: What the message suggests, whatever the cause.
ADVICE = "try a lower learning rate, or clip gradients (--clip-grad-norm, fit(clip_grad_norm=...))"


class DivergenceError(PyroVAEError):
    """The loss, a gradient or a parameter became NaN or infinite; the last good checkpoint is kept."""


def optimizer_tensors(optim: torch.optim.Optimizer) -> List[torch.Tensor]:
    """The optimizer's floating-point state (Adam's moments, Adagrad's sums)."""
    return [v for state in optim.state.values() for v in state.values() if torch.is_tensor(v)]


def network_groups(vae) -> Dict[str, List[torch.nn.Parameter]]:
    """Parameters by named sub-network of ``vae`` (encoder, posterior, decoder, likelihood, prior)."""
    groups = {name: list(child.parameters()) for name, child in vae.named_children()}
    return {name: params for name, params in groups.items() if params}


def bad_networks(vae, optim: Optional[torch.optim.Optimizer] = None, grads: bool = False) -> List[str]:
    """Sub-networks with a non-finite gradient (``grads``) or a non-finite parameter or optimizer state."""
    bad = []
    for name, params in network_groups(vae).items():
        if grads:
            tensors = [p.grad for p in params if p.grad is not None]
        else:
            tensors = params + [v for p in params for v in (optim.state.get(p, {}).values() if optim else ())
                                if torch.is_tensor(v)]
        if not all_finite(tensors):
            bad.append(name)
    return bad


def _show(value: torch.Tensor) -> str:
    return f"{float(value):.4g}"


def describe_terms(vae, x: torch.Tensor, idx: torch.Tensor, rng: Dict[str, torch.Tensor],
                   **data: torch.Tensor) -> str:
    """Which ELBO term is non-finite on the minibatch ``x[idx]``, drawing ``z`` as the step did (from ``rng``).

    ``data`` is what the step passed to the model and guide besides ``x`` (a conditional VAE's labels ``y``).
    """
    cuda = [x.device.index or 0] if x.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda), torch.no_grad():
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng:
                torch.cuda.set_rng_state(rng["cuda"], x.device)
            recon, kls = trace_terms(vae, x, idx, **data)
    except (ValueError, RuntimeError) as e:
        return f"its terms could not be evaluated ({one_line(e)})"
    terms = {"the reconstruction term log p(x|z)": recon}
    terms.update({f"the KL term at site {site!r}": kl for site, kl in kls.items()})
    bad = [f"{name} is {_show(v)}" for name, v in terms.items() if not torch.isfinite(v).all()]
    good = [f"{name} is finite ({_show(v)})" for name, v in terms.items() if torch.isfinite(v).all()]
    if not bad:
        return "both ELBO terms were finite on a fresh trace, so the estimator's own combination overflowed"
    return ", ".join(bad + good)


def explain_step(vae, optim, x: torch.Tensor, idx: torch.Tensor, loss: Optional[torch.Tensor],
                 error: Optional[BaseException], before: Dict[str, torch.Tensor],
                 rng: Dict[str, torch.Tensor], **data: torch.Tensor) -> Tuple[str, str]:
    """``(what, why)`` for a step that went bad; afterwards ``vae`` holds its parameters ``before`` the step.

    :param loss: the step's loss (None if the step raised ``error``).
    :param before: ``vae.state_dict()`` from before the step.
    :param rng: the torch RNG state from before the step.
    :param data: the step's other inputs to the model and guide (a conditional VAE's labels ``y``).
    """
    bad_grads = [] if error is not None else bad_networks(vae, grads=True)
    bad_update = [] if error is not None else bad_networks(vae, optim)
    vae.load_state_dict(before)  # leave the model at its last finite parameters, and trace the terms there
    terms = describe_terms(vae, x, idx, rng, **data)
    if error is not None:
        return "the training step failed", f"{one_line(error)}; {terms}"
    grads = f"non-finite gradients in {', '.join(bad_grads)}" if bad_grads else "finite gradients"
    if not torch.isfinite(loss).all():
        return f"loss became {_show(loss)}", f"{terms}; {grads}"
    if bad_grads:
        return "gradients became non-finite", f"the loss ({_show(loss)}) was finite, but there were {grads}"
    return ("parameters became non-finite", f"the loss ({_show(loss)}) and its gradients were finite, "
            f"but the update of {', '.join(bad_update) or 'the optimizer state'} overflowed")

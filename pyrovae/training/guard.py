"""The divergence guard: one finiteness check per checkpoint, and a replay that names the bad step.

Steps never sync with the host; their losses stay on the device. At every checkpoint and at
the end of every epoch :meth:`DivergenceGuard.finite` checks those losses, the parameters and
the optimizer state with one sync (:func:`~pyrovae.validation.all_finite`). When that fails,
the loop returns to the last good state and :meth:`DivergenceGuard.replay` re-runs the steps
since then, checking each, until it finds the first bad one, which
:func:`pyrovae.divergence.explain_step` explains.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import torch

from .. import distributed
from ..divergence import ADVICE, DivergenceError, all_finite, explain_step, optimizer_tensors
from .checkpointing import torch_rng_state


class DivergenceGuard:
    """Checks that training stays finite, and explains where it stopped being so.

    :param model: the module being trained; ``optim`` its optimizer.
    :param ranks: a data-parallel run's ranks (None in one process): a replay explains the
        rank's own rows of the bad minibatch.
    """

    def __init__(self, model: torch.nn.Module, optim: torch.optim.Optimizer,
                 ranks: Optional[distributed.Ranks] = None) -> None:
        self.model, self.optim, self.ranks = model, optim, ranks
        self.params = list(model.parameters())

    def finite(self, losses: Optional[torch.Tensor] = None) -> bool:
        """Whether ``losses``, every parameter and every optimizer state are finite (one host sync)."""
        extra = [] if losses is None else [losses]
        return all_finite([*extra, *self.params, *optimizer_tensors(self.optim)])

    def replay(self, step: Callable[..., torch.Tensor], x: torch.Tensor, batches: Sequence[torch.Tensor],
               start: int, labels: Dict[str, torch.Tensor], epoch: int, kept: str) -> DivergenceError:
        """Re-run steps ``start..`` of the epoch (the model at its last good state), checking each, and
        return the error that explains the first bad one. ``kept`` says what is left on disk."""
        device = x.device
        for i in range(start, len(batches)):
            before = {k: v.clone() for k, v in self.model.state_dict().items()}
            rng = torch_rng_state(device)
            loss, error = None, None
            try:
                loss = step(x, batches[i], **labels)
            except (ValueError, RuntimeError) as e:  # e.g. a distribution refusing NaN parameters
                error = e
            if error is None and self.finite(loss):
                continue
            own = batches[i] if self.ranks is None else self.ranks.shard(batches[i])  # this rank's rows
            what, why = explain_step(self.model, self.optim, x, own, loss, error, before, rng, **labels)
            return DivergenceError(f"{what} at epoch {epoch + 1}, step {i + 1}: {why}; {ADVICE}; {kept}")
        return DivergenceError(f"training became non-finite in epoch {epoch + 1}, but a replay from the last "
                               f"good state did not reproduce it (a non-deterministic device?); {ADVICE}; {kept}")

"""Checkpoints of a run: the state that continues it bit for bit, on disk and as the last good state.

A checkpoint holds the weights, the optimizer, the RNG states (torch's, CUDA's and the
data stream's) and the :class:`~pyrovae.training.counters.Counters`. Inside an epoch it
stores the data stream as it was when the epoch was drawn, so a resumed run redraws that
epoch and continues from the step after the checkpoint.
"""

from __future__ import annotations

import io
from typing import Any, Dict, Optional, Tuple

import torch

from ..runs import RunFolder
from .counters import Counters
from .epochs import Epochs


def torch_rng_state(device: torch.device) -> Dict[str, torch.Tensor]:
    """torch's global RNG state, and the device's when it is a GPU."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


class Checkpoints:
    """Saves and restores a run's state: ``checkpoint.pt`` in the run folder (when there is one),
    and the last state known to be finite, kept in memory for the divergence replay.

    :param model: the module being trained; ``optim`` its optimizer.
    :param folder: the run folder (None: nothing is written, e.g. on a rank other than 0).
    """

    def __init__(self, model: torch.nn.Module, optim: torch.optim.Optimizer, counters: Counters, epochs: Epochs,
                 device: torch.device, folder: Optional[RunFolder]) -> None:
        self.model, self.optim, self.counters, self.epochs = model, optim, counters, epochs
        self.device, self.folder = device, folder
        self.last_saved: Optional[Tuple[int, int]] = None  # (epoch, step) of the newest checkpoint on disk
        self.good: Optional[bytes] = None  # the last state that passed the finiteness check, serialized

    def state(self, elapsed: float = 0.0) -> Dict[str, Any]:
        """Everything that continues the run; ``elapsed``: seconds since the epoch's current stretch began."""
        rng = {**torch_rng_state(self.device), "data": self.epochs.data_rng.get_state()}
        if self.counters.mid_epoch:
            rng["data"] = self.epochs.epoch_rng  # redraws this epoch's order and binarization on resume
        return {"model": self.model.state_dict(), "optimizer": self.optim.state_dict(), "rng": rng,
                **self.counters.state_dict(elapsed)}

    def restore(self, state: Dict[str, Any]) -> None:
        """Continue from ``state``; the caller's learning rate wins over the saved one."""
        lrs = [g["lr"] for g in self.optim.param_groups]
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optimizer"])
        for group, lr in zip(self.optim.param_groups, lrs):
            group["lr"] = lr
        metrics = None if "metrics" in state or self.folder is None else self.folder.read_metrics()
        self.counters.load_state_dict(state, self.device, metrics)
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        self.epochs.data_rng.set_state(rng["data"])
        if self.device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        self.epochs.epoch_rng = rng["data"]

    def save(self, elapsed: float = 0.0) -> None:
        """Checkpoint (when there is a run folder) and keep the state as the last good one."""
        self.keep_good(self.state(elapsed))
        if self.folder is not None:
            # Serialized once: the checkpoint is the bytes just kept as the last good state. It
            # carries the metrics too, so a kill between these two writes loses nothing.
            self.folder.save_checkpoint(self.good)
            self.folder.write_metrics(self.counters.metrics)
            self.last_saved = (self.counters.epoch, self.counters.step)

    def keep_good(self, state: Dict[str, Any]) -> None:
        """Remember ``state`` as the last good one: serialized, so a deep copy off the device."""
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.good = buffer.getvalue()

    def load_good(self) -> None:
        """Return to the last good state."""
        self.restore(torch.load(io.BytesIO(self.good), map_location=self.device, weights_only=True))

    def kept(self) -> str:
        """What a failed run leaves on disk, for its error message."""
        if self.folder is None:
            return "nothing was saved (no run folder)"
        if self.last_saved is None:
            return "no checkpoint had been written yet, so nothing was saved"
        epoch, step = self.last_saved
        return f"the checkpoint of epoch {epoch} is kept" if step == 0 else \
            f"the checkpoint at epoch {epoch + 1}, step {step} is kept"

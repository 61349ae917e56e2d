"""Where a run stands: the counters a checkpoint records besides weights, optimizer and RNG."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch


@dataclass
class Counters:
    """The progress of a run, with ``state_dict``/``load_state_dict`` like a torch module.

    ``seconds`` is training time, ``wall_time`` adds the evaluation after every epoch. ``step``,
    ``epoch_losses`` and ``epoch_seconds`` describe the epoch in progress (for a checkpoint
    taken inside it): the steps done, their losses and their time before an interruption.
    """

    epoch: int = 0
    samples_seen: int = 0
    seconds: float = 0.0
    wall_time: float = 0.0
    step: int = 0
    epoch_losses: Optional[torch.Tensor] = None
    epoch_seconds: float = 0.0
    metrics: List[Dict[str, Any]] = field(default_factory=list)
    #: Records at the log-spaced points of samples seen (:mod:`pyrovae.training.curve`).
    curve: List[Dict[str, Any]] = field(default_factory=list)

    #: The run-long counters, stored under their own names in every checkpoint.
    TOTALS = ("epoch", "samples_seen", "seconds", "wall_time")

    @property
    def mid_epoch(self) -> bool:
        """Whether an epoch is in progress (a checkpoint taken now must record its position)."""
        return self.step > 0

    def state_dict(self, elapsed: float = 0.0) -> Dict[str, Any]:
        """The counters as checkpoint entries; ``elapsed``: seconds of the current epoch since its last start."""
        mid = self.mid_epoch
        return {**{k: getattr(self, k) for k in self.TOTALS}, "metrics": list(self.metrics),
                "curve": list(self.curve), "step": self.step,
                "epoch_losses": self.epoch_losses if mid else torch.empty(0),
                "epoch_seconds": self.epoch_seconds + elapsed if mid else 0.0}

    def load_state_dict(self, state: Dict[str, Any], device: torch.device,
                        metrics: Optional[List[Dict[str, Any]]] = None) -> None:
        """Restore from :meth:`state_dict`'s output. Checkpoints from before mid-epoch saving hold no
        step, losses or metrics: ``metrics`` (``metrics.json``'s records) stands in for the latter."""
        for key in self.TOTALS:
            setattr(self, key, state[key])
        self.step = int(state.get("step", 0))
        self.epoch_losses = state["epoch_losses"].to(device) if self.step else None
        self.epoch_seconds = float(state.get("epoch_seconds", 0.0))
        self.metrics = list(state["metrics"]) if "metrics" in state else list(metrics or [])[: self.epoch]
        self.curve = list(state.get("curve", []))

    def finish_epoch(self, rows: int, seconds: float, record: Dict[str, Any]) -> None:
        """Count an epoch over ``rows`` training rows that took ``seconds``; ``record`` is its metrics."""
        self.epoch += 1
        self.samples_seen += rows
        self.seconds += seconds
        self.metrics.append({"epoch": self.epoch, "samples_seen": self.samples_seen, **record,
                             "seconds": self.seconds})

    def start_epoch(self) -> None:
        """Forget the position inside the epoch just finished."""
        self.step, self.epoch_losses, self.epoch_seconds = 0, None, 0.0

"""The run folder at the start of ``fit``: the checks before any work, and the checkpoint to resume."""

from __future__ import annotations

import warnings
from typing import Any, Dict, Optional, Tuple

import torch

from ..errors import PyroVAEError, PyroVAEWarning
from ..runs import RunFolder
from ..validation import one_line
from .budget import Budget
from .checkpointing import Checkpoints


def check_folder(out: Optional[str], resume: bool, ranks=None) -> Tuple[Optional[RunFolder], bool]:
    """The run folder, if any, after the checks that need no lock (not in use, and new or resumable),
    and whether the run resumes.

    ``resume`` on a folder that holds no run yet starts one, with a one-line warning: a job that
    always passes ``--resume`` (a preemptible or requeued cluster job) needs no first-time case.
    In a data-parallel run rank 0 checks the folder (every rank raises what it finds) and only
    rank 0 gets it: the other ranks write nothing.
    """
    if ranks is not None:
        found, resume = ranks.from_main(lambda: _found(*check_folder(out, resume)), "the run-folder checks")
        return (RunFolder(out) if found and ranks.main else None), resume
    if out is None:
        if resume:
            raise PyroVAEError("resume needs a run folder (out=...)")
        return None, False
    folder = RunFolder(out)
    folder.check_free()
    if resume and not folder.exists():
        folder.check_new()
        warnings.warn(f"{folder.path} holds no run yet; starting a new one", PyroVAEWarning, stacklevel=3)
        return folder, False
    if not resume:
        folder.check_new()
    return folder, resume


def _found(folder: Optional[RunFolder], resume: bool) -> Tuple[bool, bool]:
    return folder is not None, resume


def checkpoint_to_resume(folder: Optional[RunFolder], resume: bool, device: torch.device,
                         ranks) -> Optional[Dict[str, Any]]:
    """The checkpoint a resumed run continues from (None: start afresh); rank 0 reads it for every rank."""
    if ranks is None:
        return folder.load_checkpoint(device) if resume and folder.has_checkpoint() else None
    # Sent to the other ranks from the CPU; restoring moves every part to the rank's own device.
    return ranks.from_main(lambda: folder.load_checkpoint("cpu") if resume and folder.has_checkpoint() else None,
                           "loading the checkpoint")


def resume_from(checkpoints: Checkpoints, state: Dict[str, Any], out: str, budget: Budget) -> None:
    """Restore ``state`` and check that this run can continue it up to ``budget``."""
    path = RunFolder(out).path
    try:
        checkpoints.restore(state)
    except (RuntimeError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise PyroVAEError(f"checkpoint of {path} does not match this run ({one_line(e)})") from None
    counters = checkpoints.counters
    checkpoints.last_saved = (counters.epoch, counters.step)
    steps = budget.steps_per_epoch
    if counters.step >= steps:
        raise PyroVAEError(f"checkpoint of {path} stopped at step {counters.step} of an epoch, but "
                           f"this run has {steps} steps per epoch (other data or batch size?)")
    budget.check_resume(counters.epoch * steps + counters.step, path)

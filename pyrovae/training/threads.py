"""CPU threads of a training run, and a note when other work already keeps the cores busy.

Why it matters: torch runs each large op (every matrix product, every big element-wise
op) as an OpenMP parallel region with one thread per core, and the region ends at a
barrier that waits for its slowest thread. A training step is dozens of such regions.
When another CPU-bound process holds one of the cores, one thread of every team waits
for the scheduler to give it a core back (a time slice, milliseconds), so every region
takes a time slice instead of microseconds, and an epoch can take tens of times its quiet
time. With fewer threads than free cores no thread waits for a core: the step runs at the
speed of the cores it has. Threads that sleep at once at a barrier (``OMP_WAIT_POLICY=PASSIVE``,
which the ``pyrovae`` command sets on a busy machine: :mod:`pyrovae.cpu_load`) leave the cores
to the threads that still work, with the same numbers (docs/performance.md, "Contention").
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator, Optional

import torch

from ..cpu_load import free_cores, oversubscribed


def threads_for(option: Optional[int], ranks, device: torch.device) -> int:
    """The intra-op threads a run uses: the ``threads`` option if given; one per rank for a
    data-parallel run on CPU (the ranks already share the cores); else torch's current number
    (one per core, or ``OMP_NUM_THREADS``)."""
    if option is not None:
        return option
    if ranks is not None and device.type == "cpu":
        return 1
    return torch.get_num_threads()


def busy_note(threads: int, load: float, cpus: int, wait_policy: Optional[str] = None) -> Optional[str]:
    """One line for the progress output when other work (the 1-minute ``load`` average, at least
    one core's worth) leaves fewer free ``cpus`` than this run's ``threads``; None otherwise.
    ``wait_policy`` is ``OMP_WAIT_POLICY`` as the process started with it."""
    if not oversubscribed(threads, load, cpus):
        return None
    head = f"note: the machine is busy (load average {load:.1f} on {cpus} cores) and training uses {threads} threads"
    if (wait_policy or "").upper() == "PASSIVE":
        return f"{head}: waiting threads sleep (OMP_WAIT_POLICY=PASSIVE) so that epochs do not stall"
    return (f"{head}: epochs may stall; --threads {free_cores(load, cpus)} or OMP_WAIT_POLICY=PASSIVE "
            "avoids that (docs/performance.md)")


@contextlib.contextmanager
def training_threads(option: Optional[int], ranks, device: torch.device, progress: bool) -> Iterator[int]:
    """Within the block torch uses :func:`threads_for` intra-op threads; torch's own number is back after it.

    Only the intra-op pool is set: torch's inter-op pool can be sized once per process, before
    any parallel work, and a training step does not use it. With ``progress``, a run on a busy
    CPU gets :func:`busy_note` on stderr (rank 0's, in a data-parallel run).
    """
    before = torch.get_num_threads()
    threads = threads_for(option, ranks, device)
    if progress and device.type == "cpu" and hasattr(os, "getloadavg") and (ranks is None or ranks.rank == 0):
        note = busy_note(threads, os.getloadavg()[0], os.cpu_count() or 1, os.environ.get("OMP_WAIT_POLICY"))
        if note is not None:
            print(note, file=sys.stderr, flush=True)
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)

"""How busy the CPU is, and how OpenMP threads should wait on a busy one (no torch import).

torch runs each large op as an OpenMP parallel region that ends at a barrier. By default
(GNU OpenMP, what torch's Linux wheels use) a thread that reaches the barrier first spins
for a while before it sleeps. On a machine where another process keeps a core busy, the
spinning thread holds a core that the thread it waits for (and the other process) could
use, so every region stretches to scheduler time slices: a training epoch beside one busy
process took 3-5x its quiet time on the 2-core CPU. With ``OMP_WAIT_POLICY=PASSIVE`` a
waiting thread sleeps at once, and the same epochs took 1.2-1.7x (docs/performance.md,
"Contention"). Waiting changes no result, only time: sleeping and waking costs a quiet
machine 10-40% per epoch, which is why it is chosen only when the machine is busy.

The OpenMP runtime reads ``OMP_WAIT_POLICY`` once, when torch is imported, so
:func:`passive_waits_when_busy` must run before that; the ``pyrovae`` command does it first.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping, MutableMapping, Optional


def free_cores(load: float, cpus: int) -> int:
    """Cores that other work (the 1-minute ``load`` average) leaves free, at least one."""
    return max(1, cpus - round(load))


def oversubscribed(threads: int, load: float, cpus: int) -> bool:
    """Whether other work (at least one core's worth of ``load``) leaves fewer free ``cpus`` than ``threads``."""
    return load >= 1 and threads > free_cores(load, cpus)


def default_threads(environ: MutableMapping[str, str], cpus: int) -> int:
    """torch's intra-op threads before anything sets them: ``OMP_NUM_THREADS``, else one per core."""
    value = environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else cpus


def passive_waits_when_busy(environ: Optional[MutableMapping[str, str]] = None, load: Optional[float] = None,
                            cpus: Optional[int] = None, modules: Optional[Mapping[str, object]] = None) -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in ``environ`` (``os.environ``) when the machine is
    :func:`oversubscribed` for torch's default threads, torch is not among the imported
    ``modules`` (``sys.modules``) yet and the user has not chosen a policy; return whether it
    was set. ``load``/``cpus`` default to this machine's."""
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    if "OMP_WAIT_POLICY" in environ or "torch" in modules or (load is None and not hasattr(os, "getloadavg")):
        return False
    load = os.getloadavg()[0] if load is None else load
    cpus = (os.cpu_count() or 1) if cpus is None else cpus
    if not oversubscribed(default_threads(environ, cpus), load, cpus):
        return False
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True

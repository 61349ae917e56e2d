"""The training loops ``bench_epoch.py`` times against each other, and the busy process of its contention mode.

Every contender trains the same VAE (784-400-20, M = ``batch``, Adam 1e-3, the estimator named)
on the same grey-level training rows, binarized afresh every epoch, and answers ``run(epochs)``
with the wall seconds of each epoch (device work included). The first epoch of every call may
include set-up (pyrovae: fit's recording or compiling the step; NumPyro: XLA compilation on the
first call), so steady-state figures leave it out.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from typing import Callable, Dict, Iterator, List, Optional

import numpy as np
import pyro
import torch

from baselines import HandwrittenVAE, handwritten_step, plain_pyro, synchronize
from pyrovae import VAE, fit
from pyrovae.fastpath import make_optimizer

LR = 1e-3


def fresh_vae(device: torch.device) -> VAE:
    """The 784-400-20 VAE from fixed initial weights."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    return VAE(784, 20, (400,)).to(device)


def _timed_epochs(epoch: Callable[[], object], epochs: int, device: torch.device) -> List[float]:
    """Wall seconds of each of ``epochs`` calls of ``epoch``."""
    out = []
    for _ in range(epochs):
        synchronize(device)
        start = time.perf_counter()
        epoch()
        synchronize(device)
        out.append(time.perf_counter() - start)
    return out


class FitLoop:
    """pyrovae as a user runs it: :func:`pyrovae.fit` with the step named (a fresh model per call)."""

    def __init__(self, train: torch.Tensor, device: torch.device, estimator: str, batch: int, step: str,
                 threads: Optional[int]) -> None:
        self.train, self.device, self.estimator, self.batch = train.to(device), device, estimator, batch
        self.step, self.threads = step, threads

    def run(self, epochs: int) -> List[float]:
        """Seconds of each epoch as fit measures them (ending with a device sync)."""
        metrics = fit(fresh_vae(self.device), self.train, estimator=self.estimator, epochs=epochs,
                      batch_size=self.batch, lr=LR, device=str(self.device), progress=False, step=self.step,
                      threads=self.threads, dynamic_binarization=True).metrics
        totals = [0.0] + [m["seconds"] for m in metrics]
        return [b - a for a, b in zip(totals, totals[1:])]


class TorchLoop:
    """The hand-written PyTorch loop (fused Adam) over the device-resident set, reshuffled every epoch."""

    def __init__(self, train: torch.Tensor, device: torch.device, estimator: str, batch: int) -> None:
        self.train, self.device, self.batch = train.to(device), device, batch
        net = HandwrittenVAE(like=fresh_vae(device)).to(device)
        self.step = handwritten_step(net, make_optimizer(torch.optim.Adam, net.parameters(), LR, device),
                                     len(train), 1, estimator)

    def epoch(self) -> None:
        """One epoch: a fresh binarization, a permutation, the steps."""
        x = torch.bernoulli(self.train)
        for idx in torch.randperm(len(x), device=self.device).split(self.batch):
            self.step(x, idx)

    def run(self, epochs: int) -> List[float]:
        """Seconds of each epoch."""
        return _timed_epochs(self.epoch, epochs, self.device)


class PyroLoop:
    """The plain Pyro pattern: a ``DataLoader`` and ``SVI.step`` with a ``PyroOptim``."""

    def __init__(self, train: torch.Tensor, device: torch.device, estimator: str, batch: int) -> None:
        self.train, self.device, self.batch = train, device, batch
        self.svi = plain_pyro(fresh_vae(device), estimator, 1, LR)

    def epoch(self) -> None:
        """One epoch: a fresh binarization on the host, a shuffling DataLoader, ``svi.step`` per batch."""
        data = torch.utils.data.TensorDataset(torch.bernoulli(self.train))
        for (xb,) in torch.utils.data.DataLoader(data, batch_size=self.batch, shuffle=True):
            self.svi.step(xb.to(self.device))

    def run(self, epochs: int) -> List[float]:
        """Seconds of each epoch."""
        return _timed_epochs(self.epoch, epochs, self.device)


class NumPyroLoop:
    """NumPyro on JAX (:mod:`numpyro_vae`): the whole epoch one jitted ``lax.scan``; built on first use."""

    def __init__(self, train: torch.Tensor, device: torch.device, estimator: str, batch: int) -> None:
        if estimator != "analytic":
            raise ValueError("the NumPyro contender implements the analytic estimator (TraceMeanField_ELBO)")
        from numpyro_vae import NumPyroEpochs

        self.epochs = NumPyroEpochs(np.asarray(train.cpu(), dtype=np.float32), batch, LR)

    def run(self, epochs: int) -> List[float]:
        """Seconds of each epoch (each ends by reading the epoch's loss, so the work is done)."""
        return _timed_epochs(self.epochs.epoch, epochs, torch.device("cpu"))


#: What ``--contenders`` may name: a builder ``(train, device, estimator, batch, args) -> loop``.
CONTENDERS: Dict[str, Callable] = {
    "pyrovae": lambda train, dev, est, m, args: FitLoop(train, dev, est, m, args.step, args.threads),
    "compiled": lambda train, dev, est, m, args: FitLoop(train, dev, est, m, "compiled", args.threads),
    "torch": lambda train, dev, est, m, args: TorchLoop(train, dev, est, m),
    "pyro": lambda train, dev, est, m, args: PyroLoop(train, dev, est, m),
    "numpyro": lambda train, dev, est, m, args: NumPyroLoop(train, dev, est, m),
}

#: The busy process: one CPU-bound Python/numpy loop on one thread, as another user's job would be.
BUSY = "import numpy as np\na = np.random.rand(256, 256)\nwhile True:\n    a = np.tanh(a) + 0.5\n"


@contextlib.contextmanager
def busy_process(enabled: bool) -> Iterator[Optional[int]]:
    """Within the block one busy process spins beside this one (its pid; None when not ``enabled``)."""
    if not enabled:
        yield None
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", BUSY], env=env)
    time.sleep(1.0)  # running, and in the load average's view
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()

"""What pyrovae is timed against, and how: a hand-written PyTorch VAE, the plain Pyro pattern, timers.

* :class:`HandwrittenVAE`: the PyTorch-example VAE (784-400-20 ReLU, one linear head for
  ``[mu | log sigma^2]``, Bernoulli logits), its loss written out by hand for SGVB-A (``mc``) and
  SGVB-B (``analytic``) with L particles, and the same optimizer as pyrovae.
* :func:`plain_pyro`: ``SVI`` + ``PyroOptim`` Adam + Pyro's ``Trace_ELBO`` / ``TraceMeanField_ELBO``
  on the very same ``vae.model``/``vae.guide``: what a Pyro user writes today.
* :func:`interleaved`: the median time per call of several functions, run in turns so that
  machine noise hits them alike.
"""

from __future__ import annotations

import copy
import os
import platform
import statistics
import time
from typing import Callable, Dict

import pyro
import torch
import torch.nn.functional as F
from torch import nn

import pyrovae

PYRO_ELBOS = {"mc": pyro.infer.Trace_ELBO, "analytic": pyro.infer.TraceMeanField_ELBO}


class HandwrittenVAE(nn.Module):
    """The PyTorch-example VAE; with ``like=vae`` it copies a pyrovae VAE's networks (same init)."""

    def __init__(self, x_dim: int = 784, hidden: int = 400, z_dim: int = 20, like=None) -> None:
        super().__init__()
        if like is not None:
            self.enc, self.dec = copy.deepcopy(like.encoder), copy.deepcopy(like.decoder)
        else:
            self.enc = nn.Sequential(nn.Linear(x_dim, hidden), nn.ReLU(), nn.Linear(hidden, 2 * z_dim))
            self.dec = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, x_dim))

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        """Per-point SGVB-B with one sample: -KL (Kingma & Welling 2013, appendix B) + log p(x|z)."""
        mu, log_var = self.enc(x).chunk(2, dim=-1)
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
        recon = -F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(-1)
        return recon - 0.5 * (mu**2 + log_var.exp() - log_var - 1).sum(-1)

    def loss(self, xb: torch.Tensor, scale: float, particles: int = 1, estimator: str = "analytic") -> torch.Tensor:
        """``-(N/M) sum_i L~(x_i)`` with L particles (eqs. 6-8), as one batched pass."""
        mu, log_var = self.enc(xb).chunk(2, dim=-1)
        eps = torch.randn((particles,) + mu.shape, dtype=mu.dtype, device=mu.device)
        z = mu + torch.exp(0.5 * log_var) * eps
        nll = F.binary_cross_entropy_with_logits(self.dec(z), xb.expand(particles, *xb.shape), reduction="sum")
        if estimator == "analytic":
            kl = 0.5 * (mu**2 + log_var.exp() - log_var - 1).sum()  # Kingma & Welling 2013, appendix B
        else:
            # log q(z) - log p(z) at z = mu + sigma eps, summed over particles (eq. 6)
            kl = 0.5 * (z**2 - eps**2 - log_var).sum() / particles
        return scale * (nll / particles + kl)

    def log_weights(self, xb: torch.Tensor, k: int) -> torch.Tensor:
        """``log p(x, z_k) - log q(z_k|x)`` for k samples per row, shape ``(k, M)``."""
        mu, log_var = self.enc(xb).chunk(2, dim=-1)
        eps = torch.randn((k,) + mu.shape, dtype=mu.dtype, device=mu.device)
        z = mu + torch.exp(0.5 * log_var) * eps
        log_px = -F.binary_cross_entropy_with_logits(self.dec(z), xb.expand(k, *xb.shape), reduction="none").sum(-1)
        return log_px + 0.5 * (eps**2 + log_var - z**2).sum(-1)


def handwritten_step(net: HandwrittenVAE, optim, n: int, particles: int, estimator: str) -> Callable:
    """A step function ``f(x, idx)`` of the hand-written VAE: loss, backward, optimizer."""

    def step(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        optim.zero_grad(set_to_none=True)
        loss = net.loss(x[idx], n / len(idx), particles, estimator)
        loss.backward()
        optim.step()
        return loss.detach()

    return step


def plain_pyro(vae, estimator: str, particles: int, lr: float) -> pyro.infer.SVI:
    """The plain Pyro pattern: SVI, a per-parameter PyroOptim Adam and Pyro's own ELBO."""
    loss = PYRO_ELBOS[estimator](num_particles=particles, vectorize_particles=particles > 1, max_plate_nesting=1)
    return pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": lr}), loss=loss)


def synchronize(device: torch.device) -> None:
    """Wait for the device, so that a wall-clock interval covers the work queued in it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: Dict[str, Callable[[], object]], device: torch.device, repeats: int, inner: int,
                warmup: int) -> Dict[str, float]:
    """Median seconds per call of each function; each repeat times ``inner`` calls of each in turn."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    synchronize(device)
    times: Dict[str, list] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            synchronize(device)
            times[name].append((time.perf_counter() - start) / inner)
    return {name: statistics.median(t) for name, t in times.items()}


def matmul_rate(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 2048) -> float:
    """Measured FLOP/s of an ``n x n`` matmul on ``device``: the rate that bounds a VAE step."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = interleaved({"mm": lambda: a @ b}, device, repeats=5, inner=3 if device.type == "cpu" else 50,
                          warmup=2)["mm"]
    return 2 * n**3 / seconds


def step_flops(x_dim: int, hidden: int, z_dim: int, batch: int, particles: int) -> float:
    """Matmul FLOPs of one training step of the x-h-z VAE: forward, and backward at twice that.

    The encoder runs on M rows, the decoder on L*M; the first layer needs no input gradient.
    """
    enc = 2 * batch * (x_dim * hidden + hidden * 2 * z_dim)
    dec = 2 * batch * particles * (z_dim * hidden + hidden * x_dim)
    first = 2 * batch * x_dim * hidden
    return 3 * (enc + dec) - first


def environment(device: torch.device) -> Dict[str, object]:
    """What the numbers were measured on."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # other jobs skew the timings
    return {"device": str(device), "device_name": name, "threads": torch.get_num_threads(), "load_average": load,
            "torch": torch.__version__, "pyro": pyro.__version__, "pyrovae": pyrovae.__version__,
            "python": platform.python_version()}

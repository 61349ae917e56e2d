"""Subnormal floats flushed to zero while training on a CPU.

Why: importance-weighted objectives (``iwae``, ``dreg``) pass the normalized weights
``softmax(log w)`` of their K samples back through the networks. Once the encoder is trained,
most of the K weights are below float32's smallest normal number (1.2e-38) and so are the
gradients they scale; x86 cores compute with such subnormal numbers through a microcode assist
tens of times slower than normal arithmetic. Measured on the 2-core CPU: an ``iwae`` K = 50 epoch
slowed from 3.6 s to 10.9 s over its first three epochs with subnormals kept, and stayed at
3.6 s with them flushed, at the same training ELBO to all printed digits (docs/performance.md,
"Subnormal numbers"). XLA flushes them on CPU by default, so NumPyro never pays this.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


def flushing_denormals() -> bool:
    """Whether this thread's CPU arithmetic flushes subnormal results to zero now."""
    tiny = torch.tensor([1e-30], dtype=torch.float32)
    return bool((tiny * 1e-10).item() == 0.0)


@contextlib.contextmanager
def denormals_flushed(keep: bool, device: torch.device) -> Iterator[bool]:
    """Within the block, subnormal floats are flushed to zero on a CPU (``torch.set_flush_denormal``),
    unless ``keep``; the mode the caller had is back after it. Yields whether they are flushed."""
    before = flushing_denormals()
    flush = not keep and device.type == "cpu"
    if flush != before:
        torch.set_flush_denormal(flush)
    try:
        yield flushing_denormals()
    finally:
        if flush != before:
            torch.set_flush_denormal(before)

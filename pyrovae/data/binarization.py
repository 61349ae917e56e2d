"""Binarization: how grey levels in [0, 1] become binary data.

The digit data follow the AEVB paper's set-up: grey levels are read as
Bernoulli probabilities and binarized either once (``static``) or afresh every
epoch (``dynamic``); ``none`` keeps the values. (The module is not called
``binarize`` so that it cannot shadow the function :func:`binarize`.)
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
import torch

from ..errors import PyroVAEError, unknown_name

BINARIZATIONS = ("dynamic", "static", "none")
"""How grey levels become binary data: re-drawn each epoch, drawn once, or kept."""

#: The dtypes NumPy draws uniforms in directly: 24 random bits for float32, 53 for float64, as torch's.
_NUMPY_FLOATS = {torch.float32: np.float32, torch.float64: np.float64}

#: Entries per block of :func:`parallel_uniforms`: each block is its own PCG64 stream, so the
#: values do not depend on the number of threads. 2^20 keeps the seeding cost (about 40 blocks
#: for Fashion-MNIST) far below the drawing.
BLOCK = 1 << 20


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw binary data from grey levels: each entry is 1 with probability ``x`` (in [0, 1])."""
    return torch.bernoulli(x, generator=generator)


def fresh_binarization(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One epoch's draw of dynamic binarization: 1 where a uniform draw on [0, 1) falls below ``x``.

    The law is :func:`binarize`'s, Bernoulli(``x``) entry by entry (P(U < p) = p). Drawn every
    epoch, the uniforms are the costly part: torch's CPU generator (MT19937) makes them one at a
    time, 0.17-0.19 s for Fashion-MNIST's 47 million pixels. On a CPU they come from NumPy's
    PCG64 (O'Neill 2014) instead, in fixed blocks drawn in parallel (:func:`parallel_uniforms`,
    0.07 s on two threads), seeded by one draw from ``generator``: the run's data stream still
    decides them, and a resumed epoch redraws the same ones. On CUDA torch's own generator is
    used (a counter-based Philox, parallel already). :func:`binarize` keeps ``torch.bernoulli``
    for the draws made once (the static training set and the test set), so binarized test sets,
    and the results measured on them, do not change. The comparison writes its 0/1 result over
    the uniform draws in ``x``'s dtype: one pass and no Boolean tensor in between.
    """
    if x.device.type == "cpu" and x.dtype in _NUMPY_FLOATS:
        entropy = torch.randint(2**63 - 1, (2,), generator=generator).tolist()
        uniform = parallel_uniforms(x.shape, x.dtype, entropy, torch.get_num_threads())
    else:
        uniform = torch.empty_like(x).uniform_(generator=generator)
    return torch.lt(uniform, x, out=uniform)


def parallel_uniforms(shape: torch.Size, dtype: torch.dtype, entropy: Sequence[int], threads: int) -> torch.Tensor:
    """Uniforms on [0, 1) of ``shape`` and ``dtype`` (float32 or float64), drawn by ``threads`` threads.

    Block ``k`` of the flattened tensor is drawn by PCG64 seeded with
    ``SeedSequence(entropy, spawn_key=(k,))``: NumPy's construction of independent parallel
    streams. NumPy releases the GIL while it fills an array, so the threads run in parallel.
    """
    out = np.empty(int(np.prod(shape, dtype=np.int64)), dtype=_NUMPY_FLOATS[dtype])
    starts = range(0, out.size, BLOCK)

    def fill(k: int) -> None:
        stream = np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy, spawn_key=(k,))))
        stream.random(out=out[starts[k]:starts[k] + BLOCK], dtype=out.dtype)

    workers = max(1, min(threads, len(starts)))
    if workers == 1:
        for k in range(len(starts)):
            fill(k)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(fill, range(len(starts))))
    return torch.from_numpy(out).view(shape)


def _check_binarization(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`BINARIZATIONS`, else raise a suggesting error."""
    if mode not in BINARIZATIONS:
        raise unknown_name("binarization", mode, BINARIZATIONS)
    return mode


def _apply_binarization(
    train: torch.Tensor, test: torch.Tensor, mode: str, seed: int, name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Binarize ``train``/``test`` as ``mode`` says; see :class:`Dataset` for the modes."""
    if mode == "none":
        return train, test
    for part, rows in (("train", train), ("test", test)):
        lo, hi = float(rows.min()), float(rows.max())
        if lo < 0.0 or hi > 1.0:
            raise PyroVAEError(
                f"binarize={mode!r} needs values in [0, 1] but {name} {part} data lie in "
                f"[{lo:g}, {hi:g}]; pass binarize='none' or rescale the data"
            )
    generator = torch.Generator().manual_seed(seed)
    # The test rows are drawn first, so 'static' and 'dynamic' with the same seed
    # evaluate on the very same binary test set.
    test = binarize(test, generator)
    if mode == "static":
        train = binarize(train, generator)
    return train, test

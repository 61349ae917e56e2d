"""Draws of a trained VAE written to a file: an image grid (``.png``) or the arrays (``.npz``).

The file's extension picks the writer from :data:`SAMPLE_FORMATS`; ``pyrovae sample RUN --n 64
--out FILE`` calls :func:`write_samples`. A class-conditional VAE draws the classes in turn
(row ``r`` has class ``r mod C``), so each column of a ``C``-column grid is one class.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch

from .checkpoint import atomic_write
from .errors import PyroVAEError
from .evaluate import seeded
from .registry import Registry
from .validation import check_positive
from .vae import Generated


@dataclass
class Draws:
    """What a sample file holds: the draws, their labels (conditional VAEs) and how to show them."""

    generated: Generated
    labels: Optional[torch.Tensor]
    image_shape: Optional[Tuple[int, int]]
    class_names: Optional[Sequence[str]]
    title: str


def _write_png(draws: Draws, path: Path) -> None:
    """The decoder means as an image grid, one column per class for a conditional VAE."""
    from .plots import class_name, grid_figure, save_figure  # matplotlib: only where a picture is drawn

    if draws.image_shape is None:
        raise PyroVAEError("the run's data are not images (no height x width recorded); write the draws to a "
                           ".npz file instead")
    n = len(draws.generated.mean)
    classes = None if draws.labels is None else min(n, int(draws.labels.max()) + 1)
    names = None if classes is None else [class_name(draws.class_names, c) for c in range(classes)]
    nrow = classes or max(1, round(n ** 0.5))
    save_figure(grid_figure(draws.generated.mean, nrow, draws.image_shape, draws.title, column_names=names), path)


def _write_npz(draws: Draws, path: Path) -> None:
    """Arrays ``z``, ``mean`` and ``x`` (and ``y`` for a conditional VAE), one row per draw."""
    arrays = {name: t.detach().cpu().numpy() for name, t in draws.generated._asdict().items()}
    if draws.labels is not None:
        arrays["y"] = draws.labels.cpu().numpy()
    atomic_write(path, lambda f: np.savez(f, **arrays))


SAMPLE_FORMATS: Registry[Callable[[Draws, Path], None]] = Registry("sample file extension")
"""File extension (``.png``, ``.npz``) -> writer ``(draws, path)`` of :func:`write_samples`."""
SAMPLE_FORMATS.register(".png", _write_png)
SAMPLE_FORMATS.register(".npz", _write_npz)


def sample_format(path: str | os.PathLike) -> Callable[[Draws, Path], None]:
    """The writer for ``path``'s extension; an unknown extension raises :class:`PyroVAEError`."""
    return SAMPLE_FORMATS.get(Path(path).suffix.lower() or "(none)")


def write_samples(vae, n: int, path: str | os.PathLike, *, seed: Optional[int] = None,
                  image_shape: Optional[Tuple[int, int]] = None, class_names: Optional[Sequence[str]] = None,
                  title: Optional[str] = None) -> Path:
    """Draw ``n`` rows from ``vae``'s generative model (:meth:`VAE.sample`) and write them to ``path``.

    :param path: ``.png`` for a grid of the decoder means (needs ``image_shape``), ``.npz`` for the
        arrays ``z``, ``mean``, ``x`` (and ``y``).
    :param seed: draw on a stream of this seed (the global stream is left alone); None: the global one.
    :param class_names: names of a conditional VAE's classes, shown above the grid's columns.
    :returns: the path written.
    """
    check_positive(n=n)
    writer, path = sample_format(path), Path(path)
    labels = torch.arange(n) % vae.num_classes if vae.conditioning.needs_labels else None
    with seeded(seed, next(vae.parameters()).device):
        generated = vae.sample(n, labels)
    title = title or f"{n} draws E[x|z], z ~ p(z{'|y' if labels is not None else ''})"
    path.parent.mkdir(parents=True, exist_ok=True)
    writer(Draws(generated, labels, image_shape, class_names, title), path)
    return path

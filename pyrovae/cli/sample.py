"""``pyrovae sample``: draw from a run's generative model into a PNG grid or an NPZ file."""

from __future__ import annotations

import argparse

from ..runs import load_run
from ..training import resolve_device
from ..validation import check_positive
from .common import device_flag


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The run folder, how many draws, where to, the seed and the device."""
    p.add_argument("run", help="run folder written by pyrovae train")
    p.add_argument("--n", type=int, default=64, help="how many draws (default 64)")
    p.add_argument("--out", default=None, help="FILE.png or FILE.npz (default RUN/sample.png)")
    p.add_argument("--seed", type=int, default=None, help="seed of the draws (default: the run's seed)")
    device_flag(p, "draw")


def run(args: argparse.Namespace) -> int:
    """Draw and write; bad ``--n`` or an unknown extension is refused before the run is loaded."""
    from ..export import sample_format, write_samples  # matplotlib: imported only where a grid is drawn

    check_positive(**{"--n": args.n})
    if args.out is not None:
        sample_format(args.out)
    vae, config, data, folder = load_run(args.run, device=str(resolve_device(args.device)))
    out = args.out if args.out is not None else folder.path / "sample.png"
    path = write_samples(vae.eval(), args.n, out, seed=config.seed if args.seed is None else args.seed,
                         image_shape=data.image_shape, class_names=data.class_names)
    print(f"{args.n} draws of run {folder.path}: {path}")
    return 0

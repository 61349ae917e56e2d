"""Train a VAE with a 2-D latent space on mnist-5k and draw every figure of pyrovae, plus the run report.

What this script shows:

1. ``pyrovae.fit(..., out=RUN, config=RunConfig(dataset="mnist-5k", ...))``
   trains a 784-400-2 VAE and writes a run folder whose ``config.json`` names
   the real dataset, so the figures can reload its test set and labels.
2. ``pyrovae.write_figures(RUN)`` draws every figure kind into the folder as
   ``<kind>.png``: ``recon`` (inputs above their reconstructions), ``samples``
   (decoded prior draws), ``manifold`` (the paper's Figure 4: decodings at a
   grid of prior quantiles, only for a 2-D latent), ``latent`` (test codes
   coloured by digit), ``interp`` (linear and spherical paths between two
   encoded digits), ``kl`` (KL per latent dimension, active units marked) and
   ``curves`` (ELBO, KL and reconstruction against samples seen).
3. ``pyrovae.write_run_report(RUN)`` writes ``report.md``: config, final
   metrics and every figure in one page.
4. ``pyrovae.plot(vae, kind, out, data=dataset)`` draws one kind for a VAE
   held in memory, without a run folder.
5. ``pyrovae.load_run(RUN)`` gets the trained model back from its folder;
   ``vae.sample(n)``, ``vae.embed(x)`` and ``vae.reconstruct(x)`` give back
   draws, codes and reconstructions (detached tensors), and
   ``pyrovae.export.write_samples`` writes draws to a PNG grid or an NPZ file,
   as ``pyrovae sample RUN --out FILE`` does.

``pyrovae train`` does steps 2 and 3 itself at the end of training; ``pyrovae
plot RUN --kind recon,manifold`` redraws chosen kinds.

Usage::

    python examples/plots.py                     # 30 epochs into runs/plots-z2 (a few minutes on CPU)
    python examples/plots.py --smoke             # 1 epoch on 1,000 rows into a temporary folder
    python examples/plots.py --epochs 50 --out runs/z2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pyro
import torch

import pyrovae
from pyrovae.export import write_samples


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train a 2-D latent VAE on mnist-5k and draw every pyrovae figure.")
    p.add_argument("--epochs", type=int, default=30, help="training epochs (default 30; 1 with --smoke)")
    p.add_argument("--out", default=None, help="run folder (default runs/plots-z2; a temporary one with --smoke)")
    p.add_argument("--smoke", action="store_true", help="a seconds-long check: 1 epoch on 1,000 training rows")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    epochs = 1 if args.smoke else args.epochs
    if args.out is not None:
        out = Path(args.out)
    else:  # fit() refuses a folder that exists and is not empty: a fresh one inside the temporary folder
        out = Path(tempfile.mkdtemp(prefix="pyrovae-plots-")) / "run" if args.smoke else Path("runs/plots-z2")
    config = pyrovae.RunConfig(dataset="mnist-5k", binarize="dynamic", latent_dim=2, hidden=(400,),
                               epochs=epochs, device="auto", seed=0)
    data = pyrovae.load_dataset(config.dataset, binarize=config.binarize, seed=config.seed)
    train = data.train
    if args.smoke:  # rows are sorted by digit: a fixed random subset keeps every class
        train = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:1000]]

    pyro.set_rng_seed(config.seed)  # the initial weights, as `pyrovae train` seeds them
    vae = pyrovae.VAE(data.x_dim, z_dim=config.latent_dim, hidden=config.hidden)
    started = time.perf_counter()
    result = pyrovae.fit(vae, train, test=data.test, epochs=config.epochs, device=config.device, seed=config.seed,
                         dynamic_binarization=data.dynamic, out=out, config=config, progress=not args.smoke)
    print(f"trained {epochs} epoch(s) in {time.perf_counter() - started:.1f} s, "
          f"test ELBO {result.metrics[-1]['test_elbo']:.2f} nats/point")

    started = time.perf_counter()
    for kind, path in pyrovae.write_figures(out).items():
        print(f"  {kind:<9} {path}")
    print(f"figures took {time.perf_counter() - started:.1f} s; report: {pyrovae.write_run_report(out)}")

    # One figure of an in-memory VAE: the test split, labels and image shape come from the Dataset.
    print("in memory:", pyrovae.plot(vae, "interp", out / "in-memory", data=data))

    # The model back from its folder, and what it gives back.
    loaded, config, data, folder = pyrovae.load_run(out)
    pyro.set_rng_seed(config.seed)
    drawn = loaded.sample(64)  # z ~ p(z); drawn.mean = E[x|z] (what images show), drawn.x ~ p(x|z)
    codes = loaded.embed(data.test)
    error = (loaded.reconstruct(data.test) - data.test).abs().mean()
    print(f"64 draws {tuple(drawn.mean.shape)}, codes {tuple(codes.shape)}, "
          f"mean reconstruction error {float(error):.3f} per pixel")
    for name in ("sample.png", "sample.npz"):
        print("  draws:", write_samples(loaded, 64, folder.path / name, seed=config.seed,
                                        image_shape=data.image_shape, class_names=data.class_names))


if __name__ == "__main__":
    main()

"""Class-conditional VAEs on mnist-5k: a learned prior mean per digit, and the CVAE.

PENDING: this script needs ``pyrovae train --conditional prior|full`` (see
docs/pending/README.md); it moves to examples/ when that lands.

Three runs of the same 784-400-20 VAE, trained with ``pyrovae train``:

- ``--conditional none``: the plain VAE, ``p(z) = N(0, I)``;
- ``--conditional prior``: seed 000 eq. (8), ``p(z|y) = N(mu_y, I)`` with a
  learned mean per class; the KL is ``1/2 sum_i ((mu_i - mu^y_i)^2 + sigma_i^2
  - log sigma_i^2 - 1)``, still in closed form;
- ``--conditional full``: the CVAE, with ``y`` fed to the encoder and the decoder.

Conditional models bound ``log p(x|y)``, not ``log p(x)``: the label is given,
so their numbers are higher by up to ``log 10`` nats and are not comparable
with the plain VAE's. The figures show what the label buys: digits drawn
for a chosen class.

    python examples/conditional_vae.py            # 30 epochs per run
    python examples/conditional_vae.py --smoke    # 1 epoch per run; figures to a temporary folder
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib
import pyro
import torch

import pyrovae

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "img"
MODES = ("none", "prior", "full")


def train(mode: str, epochs: int, runs: Path) -> Path:
    """``pyrovae train --conditional MODE``; the run folder."""
    out = runs / f"conditional-{mode}"
    subprocess.run([sys.executable, "-m", "pyrovae", "train", "--conditional", mode, "--epochs", str(epochs),
                    "--out", str(out), "--no-progress"], check=True)
    return out


def samples_per_class(run: Path, mode: str, per_class: int = 8) -> torch.Tensor:
    """Decoder means for ``per_class`` latent draws of every digit: rows are classes."""
    vae, _, data, _ = pyrovae.load_run(run)
    y = torch.arange(10).repeat_interleave(per_class)
    pyro.set_rng_seed(0)
    with torch.no_grad():
        z = vae.prior(y).sample() if mode == "prior" else torch.randn(len(y), vae.z_dim)
        x = vae.decode(z, y) if mode == "full" else vae.decode(z)
    return x.mean.reshape(10, per_class, *data.image_shape)


def grid_figure(images: torch.Tensor, title: str, path: Path) -> None:
    rows, cols = images.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.6, rows * 0.6 + 0.4))
    for ax, image in zip(axes.flat, images.reshape(rows * cols, *images.shape[2:])):
        ax.imshow(image, cmap="gray_r", vmin=0, vmax=1)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Class-conditional VAEs on mnist-5k.")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--smoke", action="store_true", help="1 epoch per run, figures to a temporary folder")
    p.add_argument("--figures", type=Path, default=None, help=f"figure folder (default {FIGURES})")
    args = p.parse_args(argv)
    epochs = 1 if args.smoke else args.epochs
    runs = Path(tempfile.mkdtemp())
    out = args.figures or (runs if args.smoke else FIGURES)
    out.mkdir(parents=True, exist_ok=True)

    for mode in MODES:
        run = train(mode, epochs, runs)
        summary = json.loads((run / "summary.json").read_text())
        print(f"--conditional {mode:<6} test ELBO (analytic) {summary['test_elbo']['analytic']:.2f} nats per point")
        if mode != "none":
            images = samples_per_class(run, mode)
            assert images.shape[:2] == (10, 8)
            grid_figure(images, f"--conditional {mode}: one row per digit", out / f"conditional_{mode}.png")
    print(f"figures: {out}")


if __name__ == "__main__":
    main()

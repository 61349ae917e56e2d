"""Class-conditional VAEs on mnist-5k from the command line: a learned prior mean per digit, and the CVAE.

Three runs of the same 784-400-20 VAE (Bernoulli decoder, Adam 1e-3, M = 100,
dynamic binarization, ``analytic``, seed 0), each one
``pyrovae train --conditional MODE --epochs 30 --out runs/cond-MODE``:

- ``--conditional none``: the plain VAE, ``p(z) = N(0, I)``;
- ``--conditional prior``: eq. (8) of Su Jianlin, "Variational autoencoders (1)"
  (2018), ``p(z|y) = N(mu_y, I)`` with a learned mean per class; the KL is
  ``1/2 sum_i ((mu_i - mu^y_i)^2 + sigma_i^2 - log sigma_i^2 - 1)``, still in
  closed form, so ``analytic`` applies;
- ``--conditional full``: the CVAE (Sohn et al. 2015), with the one-hot ``y``
  fed to the encoder and the decoder.

Then, from each run folder: the test ELBO from ``summary.json`` (and the
nearest-class-mean accuracy of the eq. 8 run), and the trained VAE from
``pyrovae.load_run`` asked for a chosen digit, ``vae.decode(z, y)`` with
``z ~ vae.prior(y)``. ``pyrovae train`` draws the figures into each run
folder at the end; the script copies the class-by-sample grids and the
latent codes of the eq. 8 run into ``docs/img/`` for the documentation.

Conditional models bound ``log p(x|y)``, not ``log p(x)``: the label is given,
so their numbers are not comparable with the plain VAE's.

Usage::

    python examples/conditional_vae.py                  # 3 runs of 30 epochs into runs/cond-*, figures to docs/img
    python examples/conditional_vae.py --smoke          # prior and full, 1 epoch each, no figures; CI runs this
    python examples/conditional_vae.py --runs my-runs --figures my-figures
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import pyro
import torch

import pyrovae
from pyrovae.cli import main as pyrovae_cli

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "img"
MODES = ("none", "prior", "full")
#: Figures of a run folder copied for the documentation: (mode, figure kind) -> file name.
COPIED = {("prior", "samples"): "cond-prior-samples.png", ("prior", "latent"): "cond-prior-latent.png",
          ("full", "samples"): "cond-full-samples.png"}


def train(mode: str, run: Path, flags: list) -> dict:
    """``pyrovae train --conditional MODE --out RUN FLAGS``; the run's ``summary.json``."""
    argv = ["train", "--conditional", mode, "--out", str(run), "--no-progress", *flags]
    print("$ pyrovae " + " ".join(argv))
    code = pyrovae_cli(argv)
    if code:
        raise SystemExit(code)
    return json.loads((run / "summary.json").read_text())


def ask_for_digit(run: Path, digit: int, n: int = 8) -> torch.Tensor:
    """``n`` mean images of the class ``digit``: ``z ~ p(z|y)``, decoded with ``y`` (``(n, 28, 28)``)."""
    vae, _, data, _ = pyrovae.load_run(run)
    y = torch.full((n,), digit)
    pyro.set_rng_seed(0)
    with torch.no_grad():
        z = vae.prior(y).expand((n,)).sample()  # N(mu_y, I) for 'prior'; N(0, I) for 'full'
        return vae.decode(z, y).mean.reshape(n, *data.image_shape)  # the decoder reads y for 'full' only


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Class-conditional VAEs on mnist-5k, trained with pyrovae train.")
    p.add_argument("--epochs", type=int, default=30, help="training epochs per run (default 30; 1 with --smoke)")
    p.add_argument("--runs", type=Path, default=None,
                   help="folder for the three run folders (default runs; a temporary folder with --smoke)")
    p.add_argument("--figures", type=Path, default=None,
                   help=f"where the figures are copied (default {FIGURES}; none with --smoke)")
    p.add_argument("--smoke", action="store_true",
                   help="prior and full, 1 epoch each in minibatches of 500, no figures, into a temporary folder")
    args = p.parse_args(argv)
    epochs = 1 if args.smoke else args.epochs
    runs = args.runs or (Path(tempfile.mkdtemp(prefix="pyrovae-conditional-")) if args.smoke else Path("runs"))
    figures = args.figures or (None if args.smoke else FIGURES)

    # The smoke test: 1 epoch in 8 minibatches of 500 (on a busy CPU the time goes by steps more than by rows).
    flags = ["--epochs", str(epochs)] + (["--batch-size", "500"] if args.smoke else [])
    flags += [] if figures is not None else ["--no-figures"]
    results = {}
    for mode in MODES[1:] if args.smoke else MODES:  # the smoke test skips the plain VAE
        run = runs / f"cond-{mode}"
        results[mode] = train(mode, run, flags)
        if mode != "none":  # the plain VAE ignores the label it is given
            sevens = ask_for_digit(run, 7)
            assert sevens.shape == (8, 28, 28) and torch.isfinite(sevens).all()
        for (copied_mode, kind), name in COPIED.items():
            if figures is not None and copied_mode == mode:
                figures.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(run / f"{kind}.png", figures / name)

    print(f"\nafter {epochs} epoch(s); the conditional runs bound log p(x|y), the plain VAE log p(x)")
    for mode, summary in results.items():
        accuracy = summary.get("class_mean_accuracy")
        extra = f", nearest class mean accuracy {accuracy:.3f} (chance 0.100)" if accuracy is not None else ""
        print(f"--conditional {mode:<6} test ELBO (analytic) {summary['test_elbo']['analytic']:8.2f} nats/point{extra}")
    print(f"run folders: {runs}" + (f"; figures copied to {figures}" if figures else ""))


if __name__ == "__main__":
    main()

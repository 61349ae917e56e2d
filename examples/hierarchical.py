"""A VAE with two stochastic layers (Burda et al. 2015, section 5) against the one-layer VAE.

The two-layer model is ``p(z2) p(z1|z2) p(x|z1)`` with the bottom-up guide ``q(z1|x) q(z2|z1)``:
``VAE(784, z_dim=(100, 50), hidden=((100, 100), (50, 50)))``, the IWAE paper's
784-100-100-z1(100)-50-50-z2(50). Both models train with ``auto``, which takes the closed-form
KL at the top site ``z2`` and samples ``z1``, whose prior ``p(z1|z2)`` reads the guide's ``z2``
drawn from ``z1`` itself (a closed form there would bias the ELBO), and with ``iwae``.

The script then trains the other deeper models of docs/models.md with ``auto``: the
convolutional encoder and decoder (``arch="conv"``), the amortized IAF (``iaf``, Kingma et al.
2016) against the global-layer flow (``iaf-global``), and the VampPrior (``prior="vamp"``,
Tomczak & Welling 2018).

    python examples/hierarchical.py            # 10 epochs on mnist-5k
    python examples/hierarchical.py --smoke    # a few steps of small networks on 300 digits (CI)
"""

from __future__ import annotations

import argparse

import pyro

import pyrovae

#: (name, z_dim, hidden): the IWAE paper's one-layer and two-layer architectures.
ARCHITECTURES = (("one layer", 50, (200, 200)), ("two layers", (100, 50), ((100, 100), (50, 50))))
SMOKE = (("one layer", 8, (32,)), ("two layers", (8, 4), ((32,), (16,))))
#: (name, VAE keywords): the conv networks, the amortized and the global IAF, the VampPrior.
DEEPER = (("conv", {"arch": "conv", "image_shape": (28, 28)}), ("iaf", {"posterior": "iaf"}),
          ("iaf-global", {"posterior": "iaf-global"}), ("vamp", {"prior": "vamp"}))


def train(data, z_dim, hidden, estimator: str, epochs: int, rows: slice, particles: int, test_rows: int,
          **options):
    """One run (``options``: more keywords of the VAE); returns the run's result and its model."""
    pyro.set_rng_seed(0)
    vae = pyrovae.VAE(784, z_dim=z_dim, hidden=hidden, **options)
    result = pyrovae.fit(vae, data.train[rows], test=data.test[:test_rows], estimator=estimator,
                         num_particles=particles, epochs=epochs, dynamic_binarization=data.dynamic,
                         progress=False, figures=False)
    return result, vae


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="small networks, 1 epoch on 300 digits")
    p.add_argument("--epochs", type=int, default=10)
    args = p.parse_args()

    data = pyrovae.load_dataset("mnist-5k", binarize="dynamic")
    rows = slice(0, 300) if args.smoke else slice(None)
    test_rows = 200 if args.smoke else len(data.test)
    for estimator, particles in (("auto", 1), ("iwae", 5)):
        for name, z_dim, hidden in SMOKE if args.smoke else ARCHITECTURES:
            result, vae = train(data, z_dim, hidden, estimator, 1 if args.smoke else args.epochs, rows, particles,
                               test_rows)
            samples = 20 if args.smoke else 5000
            log_px = pyrovae.log_likelihood(vae, data.test[:test_rows], num_samples=samples, seed=0)
            print(f"{estimator} K={particles}, {name} {z_dim}: test ELBO {result.metrics[-1]['test_elbo']:.2f}, "
                  f"log p(x) {log_px:.2f} nats/point; KL routes {result.summary['kl_routes'] or 'n/a'}")
    _, z_dim, hidden = (SMOKE if args.smoke else ARCHITECTURES)[0]
    for name, options in DEEPER:
        result, vae = train(data, z_dim, hidden, "auto", 1 if args.smoke else args.epochs, rows, 1, test_rows,
                            **options)
        log_px = pyrovae.log_likelihood(vae, data.test[:test_rows], num_samples=20 if args.smoke else 5000, seed=0)
        print(f"auto, {name}: test ELBO {result.metrics[-1]['test_elbo']:.2f}, log p(x) {log_px:.2f} nats/point; "
              f"KL routes {result.summary['kl_routes']}")


if __name__ == "__main__":
    main()

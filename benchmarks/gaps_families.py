"""The inference gaps of every registered posterior family on mnist-5k (Cremer, Li & Duvenaud 2018).

Protocol, per family: the architecture of ``families_mnist5k.py`` (784-400-20 ReLU, Bernoulli
decoder, dynamic binarization, Adam 1e-3, M = 100, the family's default prior, the ``auto``
estimator, seed 0) trained for ``--epochs`` epochs; then, on ``--points`` test points spread
evenly over the test set (every digit in proportion), log p(x) by AIS (``--chains`` chains x
``--ais-steps`` steps), the ELBO of the encoder and of per-point posteriors of the same family
fitted by local SVI (1000 Adam steps), each ELBO from 1000 samples per point. Prints the Markdown table of docs/families.md and writes JSON.

    OMP_NUM_THREADS=1 python benchmarks/gaps_families.py --epochs 5 --points 50 --ais-steps 500
"""

from __future__ import annotations

import argparse
import time

import pyro

import pyrovae
from family_grid import family_flags, previous_rows, write_rows
from bench_ais import spread


def run_family(name: str, data, args) -> dict:
    """Train the family's VAE briefly, then measure its gaps."""
    pyro.set_rng_seed(args.seed)
    vae = pyrovae.VAE(784, args.latent_dim, hidden=(400,), posterior=name)
    began = time.perf_counter()
    pyrovae.fit(vae, data.train, test=data.test, estimator="auto", epochs=args.epochs, seed=args.seed,
                dynamic_binarization=data.dynamic, device="cpu", progress=False)
    trained = time.perf_counter() - began
    gaps = pyrovae.inference_gaps(vae, spread(data.test, args.points), num_samples=args.chains,
                                  ais_steps=args.ais_steps, seed=args.seed)
    return {"prior": vae.names["prior"], "train_seconds": trained, **gaps.to_dict()}


def row(name: str, r: dict) -> str:
    """One line of the Markdown table."""
    return (f"| `{name}` | {r['elbo_encoder']:.2f} | {r['elbo_optimized']:.2f} | {r['log_px']:.2f} | "
            f"{r['approximation_gap']:.2f} ± {r['approximation_gap_se']:.2f} | "
            f"{r['amortization_gap']:.2f} ± {r['amortization_gap_se']:.2f} | "
            f"{r['log_px_diagnostics']['median_ess']:.1f} | {r['seconds_per_point']:.2f} |")


HEADER = ("| family | ELBO, encoder | ELBO, per-point q* | log p(x), AIS | approximation gap | amortization gap | "
          "AIS median ESS | s/point |\n|---|---|---|---|---|---|---|---|")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", type=int, default=50, help="test points, spread evenly over the test set")
    p.add_argument("--chains", type=int, default=16)
    p.add_argument("--ais-steps", type=int, default=500)
    family_flags(p, epochs=5, out="benchmarks/results/gaps_families_mnist5k.json")
    args = p.parse_args()
    data = pyrovae.load_dataset("mnist-5k", binarize="dynamic", seed=args.seed)
    rows = previous_rows(args.out)
    print(HEADER, flush=True)
    for name in args.families:
        rows[name] = run_family(name, data, args)
        print(row(name, rows[name]), flush=True)
    command = (f"python benchmarks/gaps_families.py --epochs {args.epochs} --points {args.points} "
               f"--chains {args.chains} --ais-steps {args.ais_steps} --latent-dim {args.latent_dim} --seed {args.seed}")
    write_rows(args.out, command, rows)


if __name__ == "__main__":
    main()

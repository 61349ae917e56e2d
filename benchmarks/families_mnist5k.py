"""Every registered posterior family on mnist-5k: test ELBO, IS log-likelihood and seconds per epoch.

Same architecture (784-400-Nz ReLU, Bernoulli decoder), epochs, seed, data order and optimizer
for every family; each family uses its default prior and the ``auto`` estimator (closed-form KL
where one exists, sampled otherwise; the route is recorded). Prints a table and writes JSON.

    python benchmarks/families_mnist5k.py --epochs 10 --samples 1000
"""

from __future__ import annotations

import argparse
import time

import pyro

import pyrovae
from family_grid import family_flags, previous_rows, write_rows
from pyrovae import FAMILIES


def run_family(name: str, data, args) -> dict:
    pyro.set_rng_seed(args.seed)
    vae = pyrovae.VAE(784, args.latent_dim, hidden=(400,), posterior=name)
    result = pyrovae.fit(vae, data.train, test=data.test, estimator="auto", epochs=args.epochs,
                         seed=args.seed, dynamic_binarization=data.dynamic, device="cpu", progress=False)
    start = time.perf_counter()
    ll = pyrovae.log_likelihood(vae, data.test, num_samples=args.samples, seed=args.seed)
    return {
        "prior": vae.names["prior"], "route": FAMILIES[name].route, "kl": result.summary["kl_routes"]["z"],
        "test_elbo": pyrovae.evaluate_elbo(vae, data.test, "mc", num_particles=10, seed=args.seed),
        "log_likelihood": ll, "ll_seconds": time.perf_counter() - start,
        "seconds_per_epoch": result.summary["train_seconds"] / args.epochs,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=1000, help="importance samples K for log p(x)")
    family_flags(p, epochs=10, out="benchmarks/results/families_mnist5k.json")
    args = p.parse_args()
    data = pyrovae.load_dataset("mnist-5k", binarize="dynamic", seed=args.seed)
    rows = previous_rows(args.out)
    print(f"{'family':<15} {'prior':<12} {'KL':<9} {'test ELBO':>10} {'log p(x)':>10} {'s/epoch':>8}")
    for name in args.families:
        r = rows[name] = run_family(name, data, args)
        print(f"{name:<15} {r['prior']:<12} {r['kl']:<9} {r['test_elbo']:>10.2f} {r['log_likelihood']:>10.2f} "
              f"{r['seconds_per_epoch']:>8.2f}", flush=True)
    command = (f"python benchmarks/families_mnist5k.py --epochs {args.epochs} --samples {args.samples} "
               f"--latent-dim {args.latent_dim} --seed {args.seed}")
    write_rows(args.out, command, rows)


if __name__ == "__main__":
    main()

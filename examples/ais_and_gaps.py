"""How far to trust a VAE's log-likelihood: importance sampling, AIS, BDMC and the inference gaps.

Trains a VAE on mnist-5k, then on a few test points:

1. ``log p(x)`` by importance sampling from the encoder (K = 5000) with its diagnostics, and by
   annealed importance sampling (Neal 2001), which does not depend on the encoder being good;
2. bidirectional Monte Carlo (Grosse et al. 2015) on data simulated from the model: a lower and
   an upper bound, whose distance says how accurate AIS is with these settings;
3. the approximation and amortization gaps (Cremer et al. 2018): whether to change the posterior
   family or the encoder.

    python examples/ais_and_gaps.py            # 10 epochs, 100 test points: minutes on a CPU
    python examples/ais_and_gaps.py --smoke    # seconds: 1 epoch on 1,000 digits, short chains (CI)
"""

from __future__ import annotations

import argparse

import pyro

import pyrovae

FULL = dict(epochs=10, points=100, is_samples=5000, chains=16, steps=1000, bdmc_points=50, local_steps=1000)
SMOKE = dict(epochs=1, points=8, is_samples=100, chains=4, steps=20, bdmc_points=8, local_steps=30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="1 epoch on 1,000 digits, short chains")
    args = p.parse_args()
    s = SMOKE if args.smoke else FULL

    data = pyrovae.load_dataset("mnist-5k", binarize="dynamic")
    pyro.set_rng_seed(0)
    vae = pyrovae.VAE(784, z_dim=20, hidden=(400,))
    pyrovae.fit(vae, data.train[::4] if args.smoke else data.train, test=data.test, estimator="analytic",
                epochs=s["epochs"], dynamic_binarization=data.dynamic, progress=not args.smoke)
    x = data.test[:: len(data.test) // s["points"]][:s["points"]]  # every digit: the test rows are sorted by digit

    # 1. Two estimates of log p(x), each with how far to trust it.
    value, diag = pyrovae.log_likelihood(vae, x, num_samples=s["is_samples"], seed=0, return_diagnostics=True)
    print(f"IS,  K={s['is_samples']}: {value:.2f} nats/point, median ESS {diag.median_ess:.1f}; "
          f"{diag.warning() or 'no warning'}")
    value, diag = pyrovae.log_likelihood(vae, x, method="ais", num_samples=s["chains"], ais_steps=s["steps"],
                                         seed=0, return_diagnostics=True)
    print(f"AIS, {s['chains']} chains x {s['steps']} steps: {value:.2f} nats/point, "
          f"median ESS {diag.median_ess:.1f} of {s['chains']}")

    # 2. Is AIS accurate at this many steps? Bracket the truth on data simulated from the model.
    sandwich = pyrovae.bdmc(vae, n=s["bdmc_points"], ais_steps=s["steps"], num_samples=s["chains"], seed=0)
    print(f"BDMC on {sandwich.num_points} simulated points: {sandwich.lower:.2f} <= log p(x) <= "
          f"{sandwich.upper:.2f} (gap {sandwich.gap:.2f} nats, {sandwich.seconds_per_point:.2f} s/point)")

    # 3. Where the ELBO loses: the family (approximation) or the encoder (amortization)?
    gaps = pyrovae.inference_gaps(vae, x, num_samples=s["chains"], ais_steps=s["steps"],
                                  local=pyrovae.LocalFit(steps=s["local_steps"]), seed=0)
    print(f"ELBO {gaps.elbo_encoder:.2f} + amortization gap {gaps.amortization_gap:.2f} "
          f"+ approximation gap {gaps.approximation_gap:.2f} = log p(x) {gaps.log_px:.2f} nats/point")


if __name__ == "__main__":
    main()

"""How far to trust log p(x) on mnist-5k: importance sampling, AIS, BDMC and the inference gaps.

Trains (or loads) the default mnist-5k VAE (784-400-20 ReLU, Bernoulli decoder, dynamic
binarization, the `analytic` estimator, Adam 1e-3, M = 100), then measures, on ``--points`` test
points spread evenly over the test set (every digit in proportion):

* the importance-sampled log p(x) with K = 5000 samples, and AIS (Neal 2001) with ``--chains``
  chains and ``--ais-steps`` steps, each with its diagnostics and its cost per point;
* the approximation and amortization gaps (Cremer et al. 2018), whose log p(x) is the AIS above;

and on ``--bdmc-points`` points simulated from the trained model, the BDMC bounds (Grosse et al.
2015) at each of ``--bdmc-steps``. Prints a table and writes JSON to ``--out``.

    OMP_NUM_THREADS=1 python benchmarks/bench_ais.py --points 100 --bdmc-points 50
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pyro
import torch

import pyrovae


def trained_vae(args, data) -> pyrovae.VAE:
    """The benchmark's VAE: loaded from ``--model`` when that file exists, else trained and saved there."""
    pyro.set_rng_seed(args.seed)
    vae = pyrovae.VAE(784, 20, hidden=(400,))
    if args.model and Path(args.model).is_file():
        vae.load_state_dict(torch.load(args.model, weights_only=True))
        return vae
    pyrovae.fit(vae, data.train, test=data.test, estimator="analytic", epochs=args.epochs, seed=args.seed,
                dynamic_binarization=data.dynamic, device="cpu", progress=False)
    if args.model:
        Path(args.model).parent.mkdir(parents=True, exist_ok=True)
        torch.save(vae.state_dict(), args.model)
    return vae


def spread(rows: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` rows evenly spread over ``rows``: mnist-5k's test rows are sorted by digit, so the first
    ``n`` would all be zeros, while a stride keeps every digit in proportion."""
    return rows[:: max(1, len(rows) // n)][:n]


def timed(fn):
    """``(result, seconds)`` of ``fn()``."""
    began = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - began


def measure_real(vae, x, args) -> dict:
    """IS (K = 5000), then the gaps with their AIS log p(x), on real test rows ``x``."""
    (is_value, is_diag), is_seconds = timed(lambda: pyrovae.log_likelihood(
        vae, x, num_samples=5000, seed=args.seed, return_diagnostics=True))
    gaps = pyrovae.inference_gaps(vae, x, num_samples=args.chains, ais_steps=args.ais_steps, seed=args.seed)
    n = len(x)
    return {
        "is": {"nats": is_value, "num_samples": 5000, "seconds_per_point": is_seconds / n,
               "diagnostics": is_diag.to_dict()},
        "ais": {"nats": gaps.log_px, "chains": args.chains, "steps": args.ais_steps,
                "leapfrog_steps": pyrovae.Annealing().leapfrog_steps, "seconds_per_point": gaps.seconds_log_px / n,
                "diagnostics": gaps.log_px_diagnostics.to_dict()},
        "gaps": gaps.to_dict(),
        "ais_minus_is": gaps.log_px - is_value,
    }


def measure_bdmc(vae, args) -> list:
    """BDMC bounds on simulated points at each step count."""
    return [pyrovae.bdmc(vae, n=args.bdmc_points, ais_steps=steps, num_samples=args.chains, seed=args.seed).to_dict()
            for steps in args.bdmc_steps]


def print_table(results: dict) -> None:
    """The measurements as a Markdown table (nats per point; seconds per point on this machine)."""
    real, n = results["real"], results["points"]
    print(f"| estimate ({n} test points) | nats/point | s.e. | median ESS | k-hat > 0.7 | s/point |")
    print("|---|---|---|---|---|---|")
    for name, key in (("IS, K = 5000", "is"), (f"AIS, {real['ais']['chains']} chains x {real['ais']['steps']} steps",
                                                "ais")):
        r, d = real[key], real[key]["diagnostics"]
        khat = "undefined" if d["frac_khat_high"] is None else f"{100 * d['frac_khat_high']:.0f}%"
        print(f"| {name} | {r['nats']:.2f} | {d['log_px_se']:.2f} | {d['median_ess']:.1f} | {khat} | "
              f"{r['seconds_per_point']:.3f} |")
    g = real["gaps"]
    print(f"\nAIS - IS(5000) = {real['ais_minus_is']:+.2f} nats; gaps: approximation {g['approximation_gap']:.2f} "
          f"± {g['approximation_gap_se']:.2f}, amortization {g['amortization_gap']:.2f} ± "
          f"{g['amortization_gap_se']:.2f}; local fits {g['seconds_local'] / g['num_points']:.3f} s/point\n")
    print(f"| BDMC ({results['bdmc_points']} simulated points) | lower | upper | gap | s/point |")
    print("|---|---|---|---|---|")
    for b in results["bdmc"]:
        print(f"| {b['num_samples']} chains x {b['ais_steps']} steps | {b['lower']:.2f} | {b['upper']:.2f} | "
              f"{b['gap']:.2f} | {b['seconds_per_point']:.3f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--points", type=int, default=100, help="real test points, spread evenly over the test set")
    p.add_argument("--chains", type=int, default=16)
    p.add_argument("--ais-steps", type=int, default=1000)
    p.add_argument("--bdmc-points", type=int, default=50)
    p.add_argument("--bdmc-steps", type=int, nargs="*", default=[100, 1000])
    p.add_argument("--model", default="", help="a state dict to load, or to save the trained VAE to")
    p.add_argument("--out", default="benchmarks/results/ais_mnist5k.json")
    args = p.parse_args()
    data = pyrovae.load_dataset("mnist-5k", binarize="dynamic", seed=args.seed)
    loaded = bool(args.model) and Path(args.model).is_file()
    vae, train_seconds = timed(lambda: trained_vae(args, data))
    results = {"points": args.points, "bdmc_points": args.bdmc_points, "epochs": args.epochs,
               "model": f"loaded from {args.model}" if loaded else "trained here", "train_seconds": train_seconds, "torch": torch.__version__, "threads": torch.get_num_threads(),
               "real": measure_real(vae, spread(data.test, args.points), args), "bdmc": measure_bdmc(vae, args)}
    results["command"] = (f"python benchmarks/bench_ais.py --epochs {args.epochs} --points {args.points} "
                          f"--chains {args.chains} --ais-steps {args.ais_steps} --bdmc-points {args.bdmc_points} "
                          f"--bdmc-steps {' '.join(map(str, args.bdmc_steps))} --seed {args.seed}")
    print_table(results)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

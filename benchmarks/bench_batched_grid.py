"""Throughput of a grid's runs trained one after another (``fit``) against one batched model.

R runs of one architecture (seeds x estimators, as ``compare`` trains a latent size) over the same
samples budget, both ways, on the same device: ``sequential`` is ``fit`` per run (its default step),
``batched`` is :class:`pyrovae.batched.BatchedRuns`. Reports training samples per second summed
over the runs, and the speed-up, and writes JSON.

    python benchmarks/bench_batched_grid.py --runs 2,6 --samples 4000                 # small, CPU
    python benchmarks/bench_batched_grid.py --device cuda --runs 6,15,30 --samples 1e5 \\
        --out benchmarks/results/bench_batched_grid_cuda.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pyro
import torch

from baselines import environment
from pyrovae import VAE
from pyrovae.batched import BATCHED_ELBOS, BatchedRuns
from pyrovae.options import count
from pyrovae.training import fit
from pyrovae.training.budget import Budget

X_DIM, ROWS = 784, 10_000


def _vaes(runs, z_dim, hidden, device):
    vaes = []
    for _, seed in runs:
        pyro.set_rng_seed(seed)
        vaes.append(VAE(X_DIM, z_dim, (hidden,), "tanh").to(device))
    return vaes


def _grid(size: int):
    """``size`` (estimator, seed) runs, the estimators in turn."""
    names = BATCHED_ELBOS.names()
    return [(names[i % len(names)], i // len(names)) for i in range(size)]


def sequential(x, runs, args, device) -> float:
    """Seconds to train every run with ``fit``, one after another."""
    start = time.perf_counter()
    for vae, (est, seed) in zip(_vaes(runs, args.z_dim, args.hidden, device), runs):
        fit(vae, x, estimator=est, samples=args.samples, batch_size=args.batch, optimizer="adagrad", lr=0.02,
            seed=seed, device=str(device), progress=False, figures=False)
    return time.perf_counter() - start


def batched(x, runs, args, device) -> float:
    """Seconds to train every run as one batched model."""
    start = time.perf_counter()
    grid = BatchedRuns(_vaes(runs, args.z_dim, args.hidden, device), [e for e, _ in runs], [s for _, s in runs], x,
                       batch_size=args.batch, optimizer="adagrad", lr=0.02)
    grid.train(Budget(1, args.samples, len(x), args.batch))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--runs", default="2,6", help="comma-separated grid sizes R")
    p.add_argument("--samples", type=count, default=4000, help="training samples per run")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--z-dim", type=int, default=20)
    p.add_argument("--out", default=None, help="default benchmarks/results/bench_batched_grid_<device>.json")
    args = p.parse_args()
    device = torch.device(args.device)
    x = torch.bernoulli(torch.rand(ROWS, X_DIM, generator=torch.Generator().manual_seed(0))).to(device)
    rows = []
    for size in map(int, args.runs.split(",")):
        runs = _grid(size)
        seq, bat = sequential(x, runs, args, device), batched(x, runs, args, device)
        rows.append({"runs": size, "sequential_s": seq, "batched_s": bat,
                     "sequential_samples_per_s": size * args.samples / seq,
                     "batched_samples_per_s": size * args.samples / bat, "speedup": seq / bat})
    print(f"{'R':>4} {'sequential s':>13} {'batched s':>10} {'seq samples/s':>14} {'bat samples/s':>14} "
          f"{'speed-up':>9}")
    for r in rows:
        print(f"{r['runs']:>4} {r['sequential_s']:>13.2f} {r['batched_s']:>10.2f} "
              f"{r['sequential_samples_per_s']:>14.0f} {r['batched_samples_per_s']:>14.0f} {r['speedup']:>8.2f}x")
    out = Path(args.out or Path(__file__).parent / "results" / f"bench_batched_grid_{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    setup = {"samples_per_run": args.samples, "batch": args.batch, "architecture": f"{X_DIM}-{args.hidden}-{args.z_dim}"
             " tanh, adagrad", "estimators": list(BATCHED_ELBOS.names())}
    out.write_text(json.dumps({"environment": environment(device), "setup": setup, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Epoch time of importance-weighted training with subnormal floats kept or flushed to zero (CPU).

Once the encoder is trained, most of the K normalized importance weights ``softmax(log w)``
that ``iwae`` and ``dreg`` pass back through the networks are below float32's smallest normal
number, and x86 cores compute with such subnormals tens of times slower. ``pyrovae.fit`` flushes
them to zero while it trains on a CPU (``keep_denormals=False``, the default); this script times
that against keeping them, and the hand-written PyTorch IWAE step both ways, so the effect is
seen to be the CPU's, not pyrovae's. Each contender trains a fresh VAE (by default the IWAE
paper's one-layer architecture, 784-200-200-50 with ReLU; the same initial weights) for ``--epochs`` epochs on the first ``--rows`` ``mnist-5k`` rows (M =
``--batch``, K = ``--particles``, Adam 1e-3, a fresh binarization every epoch); the contenders
are interleaved in ``--rounds`` rounds, and the table gives the median of each contender's
later epochs (its first is left out: it includes recording the step) and the ratio of kept to
flushed.

    python benchmarks/bench_denormals.py                      # iwae and mc, K = 50, M = 20
    python benchmarks/bench_denormals.py --hidden 400 --latent 20 --out benchmarks/results/bench_denormals_400.json
    python benchmarks/bench_denormals.py --rounds 1 --epochs 2 --rows 200   # smoke
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List

import pyro
import torch

from baselines import HandwrittenVAE, environment
from pyrovae import VAE, fit, load_dataset
from pyrovae.fastpath import make_optimizer
from pyrovae.training.denormals import denormals_flushed

LR = 1e-3


def fresh_vae(args) -> VAE:
    """The VAE 784-``--hidden``-``--latent`` from fixed initial weights."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    return VAE(784, args.latent, tuple(int(h) for h in args.hidden.split(",")))


def pyrovae_run(train: torch.Tensor, args, estimator: str, keep: bool) -> List[float]:
    """Seconds of each epoch of ``pyrovae.fit``."""
    metrics = fit(fresh_vae(args), train, estimator=estimator, num_particles=args.particles, epochs=args.epochs,
                  batch_size=args.batch, lr=LR, device="cpu", progress=False, keep_denormals=keep,
                  dynamic_binarization=True).metrics
    totals = [0.0] + [m["seconds"] for m in metrics]
    return [b - a for a, b in zip(totals, totals[1:])]


def torch_loss(net: HandwrittenVAE, xb: torch.Tensor, scale: float, k: int, estimator: str) -> torch.Tensor:
    """``-(N/M) sum_i`` of the IWAE bound (Burda et al. 2015, eq. 8) or the K-sample ELBO."""
    log_w = net.log_weights(xb, k)
    bound = torch.logsumexp(log_w, 0) - torch.log(torch.tensor(float(k))) if estimator == "iwae" else log_w.mean(0)
    return -scale * bound.sum()


def torch_run(train: torch.Tensor, args, estimator: str, keep: bool) -> List[float]:
    """Seconds of each epoch of the hand-written PyTorch loop (fused Adam), subnormals as ``keep`` says."""
    net = HandwrittenVAE(like=fresh_vae(args))
    optim = make_optimizer(torch.optim.Adam, net.parameters(), LR, torch.device("cpu"))
    out = []
    with denormals_flushed(keep, torch.device("cpu")):
        for _ in range(args.epochs):
            start = time.perf_counter()
            x = torch.bernoulli(train)
            for idx in torch.randperm(len(x)).split(args.batch):
                optim.zero_grad(set_to_none=True)
                torch_loss(net, x[idx], len(x) / len(idx), args.particles, estimator).backward()
                optim.step()
            out.append(time.perf_counter() - start)
    return out


CONTENDERS: Dict[str, Callable] = {"pyrovae": pyrovae_run, "torch": torch_run}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--estimators", default="iwae,mc")
    p.add_argument("--hidden", default="200,200", help="hidden layer sizes")
    p.add_argument("--latent", type=int, default=50)
    p.add_argument("--particles", type=int, default=50)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/bench_denormals.json")
    args = p.parse_args()
    train = load_dataset("mnist-5k", binarize="none").train[:args.rows]
    names = [(c, e, keep) for e in args.estimators.split(",") for c in CONTENDERS for keep in (True, False)]
    epochs: Dict[str, List[List[float]]] = {f"{c} {e} {'kept' if k else 'flushed'}": [] for c, e, k in names}
    for r in range(args.rounds):
        for c, e, keep in names[r % len(names):] + names[:r % len(names)]:  # rotate: noise hits all alike
            epochs[f"{c} {e} {'kept' if keep else 'flushed'}"].append(CONTENDERS[c](train, args, e, keep))
    summary = {name: statistics.median(t for run in runs for t in run[1:]) for name, runs in epochs.items()}
    print(f"epochs of {args.rows} rows, M={args.batch}, K={args.particles}, {args.rounds} rounds of {args.epochs}:")
    print(f"{'contender':>26} {'median s':>9} {'kept/flushed':>13}")
    for name, median in summary.items():
        ratio = median / summary[name.replace("kept", "flushed")] if name.endswith("kept") else 1.0
        print(f"{name:>26} {median:9.3f} {ratio:13.2f}")
    Path(args.out).write_text(json.dumps({"command": "python benchmarks/bench_denormals.py " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items() if k != "out"), "environment": environment(torch.device("cpu")),
        "median_epoch_seconds": summary, "epochs": epochs}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

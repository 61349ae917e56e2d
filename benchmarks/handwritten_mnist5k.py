"""Baseline: a hand-written PyTorch VAE on mnist-5k, the same network, loss and data as pyrovae's default.

784-400-20 ReLU, Gaussian encoder predicting log sigma^2, Bernoulli decoder, the closed-form KL
(SGVB-B), Adam 1e-3, M = 100, dynamic binarization of the training set every epoch, the test set
binarized once (pyrovae's mnist-5k split). It prints the test ELBO (nats per point, one sample)
per seed and epoch checkpoint, and writes the table as JSON.

    python benchmarks/handwritten_mnist5k.py --epochs 20 50 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from baselines import HandwrittenVAE
from pyrovae import load_dataset


def run(seed: int, checkpoints: list[int], data) -> dict:
    torch.manual_seed(seed)
    vae = HandwrittenVAE()
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
    out, start = {}, time.perf_counter()
    for epoch in range(1, max(checkpoints) + 1):
        x = torch.bernoulli(data.train)
        for idx in torch.randperm(len(x)).split(100):
            loss = -vae.elbo(x[idx]).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch in checkpoints:
            with torch.no_grad():
                out[epoch] = {"test_elbo": float(vae.elbo(data.test).mean()),
                              "seconds": time.perf_counter() - start}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, nargs="+", default=[20, 50])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="benchmarks/results/handwritten_mnist5k.json")
    args = p.parse_args()
    data = load_dataset("mnist-5k", binarize="dynamic", seed=0)
    results = {seed: run(seed, args.epochs, data) for seed in args.seeds}
    print(f"{'seed':>4} " + " ".join(f"{'epoch ' + str(e):>12}" for e in args.epochs))
    for seed, res in results.items():
        print(f"{seed:>4} " + " ".join(f"{res[e]['test_elbo']:>12.2f}" for e in args.epochs))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": "python benchmarks/handwritten_mnist5k.py "
                                          f"--epochs {' '.join(map(str, args.epochs))} "
                                          f"--seeds {' '.join(map(str, args.seeds))}",
                                          "torch": torch.__version__, "results": results}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

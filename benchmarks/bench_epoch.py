"""Wall time of one training epoch and of an importance-sampled log p(x): pyrovae against its baselines.

Epoch (M = 100, the 784-400-20 VAE, SGVB-B unless ``--estimator``):

* ``pyrovae``: :func:`pyrovae.fit` for two epochs (data on the device, default step), without test
  evaluation; the first epoch's time includes fit's checks and recording the step, the second is
  the steady state;
* ``torch``: the hand-written PyTorch loop over a device-resident, reshuffled training set;
* ``pyro``: the plain Pyro pattern: a ``DataLoader`` and ``SVI.step`` with a ``PyroOptim``.

log p(x) with K importance samples on ``--ll-points`` test points:

* ``pyrovae``: :func:`pyrovae.log_likelihood`;
* ``torch``: the same estimator written by hand, in row chunks;
* ``pyro``: Pyro's ``vectorized_importance_weights`` on ``vae.model``/``vae.guide``, in row chunks.

    python benchmarks/bench_epoch.py                          # fashion-mnist (60,000) if installed
    python benchmarks/bench_epoch.py --dataset mnist-5k --ll-samples 5000 --ll-points 1000
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import pyro
import torch
from pyro.infer.importance import vectorized_importance_weights

from baselines import HandwrittenVAE, environment, handwritten_step, plain_pyro, synchronize
from pyrovae import VAE, fit, load_dataset, log_likelihood
from pyrovae.fastpath import make_optimizer

LR, BATCH = 1e-3, 100


def timed(fn, device: torch.device) -> float:
    """Wall seconds of ``fn()``, device work included."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def fresh_vae(device: torch.device) -> VAE:
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    return VAE(784, 20, (400,)).to(device)


def epoch_times(train: torch.Tensor, device: torch.device, est: str, step: str) -> dict:
    """Seconds of a first and a second epoch of each contender, from the same initial weights."""
    x = torch.bernoulli(train.to(device))
    vae = fresh_vae(device)
    net = HandwrittenVAE(like=vae).to(device)
    hand = handwritten_step(net, make_optimizer(torch.optim.Adam, net.parameters(), LR, device), len(x), 1, est)
    svi = plain_pyro(fresh_vae(device), est, 1, LR)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x.cpu()), batch_size=BATCH, shuffle=True)

    def torch_epoch():
        for idx in torch.randperm(len(x), device=device).split(BATCH):
            hand(x, idx)

    def pyro_epoch():
        for (xb,) in loader:
            svi.step(xb.to(device))

    def pyrovae_epochs():
        return fit(vae, x, estimator=est, epochs=2, batch_size=BATCH, lr=LR, device=str(device),
                   progress=False, step=step).metrics

    # Two epochs each: the first includes set-up (pyrovae: checks, recording the step; all: warm
    # caches), the second is the steady state a long run sees. fit's per-epoch seconds end with a sync.
    start = time.perf_counter()
    metrics = pyrovae_epochs()
    total = time.perf_counter() - start
    second = metrics[1]["seconds"] - metrics[0]["seconds"]
    return {"first": {"pyrovae": total - second, "torch": timed(torch_epoch, device),
                      "pyro": timed(pyro_epoch, device)},
            "second": {"pyrovae": second, "torch": timed(torch_epoch, device), "pyro": timed(pyro_epoch, device)}}


def ll_times(test: torch.Tensor, device: torch.device, k: int, chunk_rows: int) -> dict:
    """Seconds (and estimates) of log p(x) with k samples per point, three ways."""
    x = test.to(device)
    vae = fresh_vae(device)
    net = HandwrittenVAE(like=vae).to(device)
    rows = max(1, chunk_rows // k)

    def by_hand():
        with torch.no_grad():
            return torch.cat([net.log_weights(xb, k).logsumexp(0) - math.log(k) for xb in x.split(rows)]).mean()

    def by_pyro():
        with torch.no_grad():
            # Pyro's weights sum log densities over the batch, so per-point estimates need one row per call.
            parts = [vectorized_importance_weights(vae.model, vae.guide, xb, num_samples=k, max_plate_nesting=1)[0]
                     for xb in x.split(1)]
            return torch.stack(parts).logsumexp(-1).mean() - math.log(k)

    out = {}
    for name, fn in (("pyrovae", lambda: log_likelihood(vae, x, num_samples=k, progress=False)),
                     ("torch", by_hand), ("pyro", by_pyro)):
        start = time.perf_counter()
        value = float(fn())
        synchronize(device)
        out[name] = {"seconds": time.perf_counter() - start, "log_px": value}
    return out


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=None, help="default: fashion-mnist if installed, else mnist-5k")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--estimator", default="analytic", choices=["mc", "analytic"])
    p.add_argument("--step", default="auto")
    p.add_argument("--ll-samples", type=int, default=5000)
    p.add_argument("--ll-points", type=int, default=1000)
    p.add_argument("--out", default=None, help="default benchmarks/results/bench_epoch_<device>.json")
    return p.parse_args()


def load(name):
    if name is not None:
        return load_dataset(name, binarize="none")
    try:
        return load_dataset("fashion-mnist", binarize="none")
    except Exception:  # noqa: BLE001 - not installed here: fall back to the embedded set
        return load_dataset("mnist-5k", binarize="none")


def main() -> None:
    args = parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    device = torch.device(args.device)
    data = load(args.dataset)
    epoch = epoch_times(torch.as_tensor(data.train, dtype=torch.float32), device, args.estimator, args.step)
    test = torch.bernoulli(torch.as_tensor(data.test[: args.ll_points], dtype=torch.float32),
                           generator=torch.Generator().manual_seed(0))
    ll = ll_times(test, device, args.ll_samples, chunk_rows=4096 * 8 if device.type == "cuda" else 4096)
    for which, times in epoch.items():
        print(f"{which} epoch of {len(data.train)} points at M={BATCH} on {device} ({data.name}):")
        for name, s in times.items():
            print(f"  {name:>8} {s:8.2f} s   {times['pyro'] / s:5.2f}x faster than plain Pyro, "
                  f"{s / times['torch']:5.2f}x hand-written")
    print(f"log p(x), K={args.ll_samples}, {len(test)} points:")
    for name, r in ll.items():
        print(f"  {name:>8} {r['seconds']:8.2f} s   log p(x) = {r['log_px']:.2f}")
    out = Path(args.out or f"benchmarks/results/bench_epoch_{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": "python benchmarks/bench_epoch.py " + " ".join(sys.argv[1:]),
                               "environment": environment(device), "dataset": data.name,
                               "train_points": len(data.train), "epoch_seconds": epoch,
                               "log_likelihood": {"samples": args.ll_samples, "points": len(test), **ll}},
                              indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

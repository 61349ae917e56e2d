"""Time one training step three ways, interleaved in one process: pyrovae, hand-written PyTorch, plain Pyro.

All three train the same 784-400-20 VAE (same initial weights) on the same minibatches:

* ``pyrovae``: the step :func:`pyrovae.fit` uses (``--step``, default ``auto``: a TorchScript
  recording on CPU, a CUDA graph on CUDA);
* ``torch``: the hand-written PyTorch VAE step, with the same fused Adam;
* ``pyro``: ``SVI.step`` with a ``PyroOptim`` Adam and ``Trace_ELBO`` / ``TraceMeanField_ELBO``.

For batch 100 and 1000, 1 and 8 vectorized particles, ``mc`` and ``analytic``, on the CPU and on
CUDA when present. Prints the median milliseconds per step, the ratios to hand-written PyTorch,
and the fraction of the compute floor (matmul FLOPs over the matmul rate measured in this run),
and writes JSON.

    python benchmarks/bench_step.py                       # CPU (and CUDA if present)
    python benchmarks/bench_step.py --devices cuda --out benchmarks/results/bench_step_cuda.json
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import pyro
import torch

from baselines import (HandwrittenVAE, environment, handwritten_step, interleaved, matmul_rate, plain_pyro,
                       step_flops)
from pyrovae import VAE
from pyrovae.estimators import estimator as make_estimator
from pyrovae.fastpath import build_step, make_optimizer

X_DIM, HIDDEN, Z_DIM, N, LR = 784, 400, 20, 10_000, 1e-3


def contenders(device: torch.device, batch: int, particles: int, est: str, step: str) -> dict:
    """The three step functions, each on its own copy of the same initial VAE, over a fixed minibatch."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    x = torch.bernoulli(torch.rand(N, X_DIM, device=device))
    idx = torch.randperm(N, device=device)[:batch]
    vae = VAE(X_DIM, Z_DIM, (HIDDEN,)).to(device)
    net = HandwrittenVAE(like=vae).to(device)
    ours = build_step(step, vae, make_estimator(est, particles, max_plate_nesting=1),
                      make_optimizer(torch.optim.Adam, vae.parameters(), LR, device, capturable=device.type == "cuda"),
                      device)
    hand = handwritten_step(net, make_optimizer(torch.optim.Adam, net.parameters(), LR, device), N, particles, est)
    other = VAE(X_DIM, Z_DIM, (HIDDEN,)).to(device)
    other.load_state_dict(vae.state_dict())
    svi = plain_pyro(other, est, particles, LR)
    return {"pyrovae": lambda: ours(x, idx), "torch": lambda: hand(x, idx),
            "pyro": lambda: svi.step(x, subsample=idx)}


def measure(device: torch.device, batch: int, particles: int, est: str, args, rate: float) -> dict:
    """One table row: median ms per step of each contender, ratios, and compute-floor fractions."""
    fns = contenders(device, batch, particles, est, args.step)
    ms = {k: 1e3 * v for k, v in interleaved(fns, device, args.repeats, args.inner, args.warmup).items()}
    floor_ms = 1e3 * step_flops(X_DIM, HIDDEN, Z_DIM, batch, particles) / rate
    return {"device": str(device), "batch": batch, "particles": particles, "estimator": est, "ms": ms,
            "pyrovae_over_torch": ms["pyrovae"] / ms["torch"], "pyro_over_torch": ms["pyro"] / ms["torch"],
            "pyro_over_pyrovae": ms["pyro"] / ms["pyrovae"], "floor_ms": floor_ms,
            "pyrovae_floor_fraction": floor_ms / ms["pyrovae"], "torch_floor_fraction": floor_ms / ms["torch"]}


def print_row(r: dict) -> None:
    ms = r["ms"]
    print(f"{r['device']:>6} {r['batch']:>5} {r['particles']:>2} {r['estimator']:>8} "
          f"{ms['pyrovae']:>9.3f} {ms['torch']:>9.3f} {ms['pyro']:>9.3f} "
          f"{r['pyrovae_over_torch']:>9.3f} {r['pyro_over_torch']:>9.3f} {r['pyrovae_floor_fraction']:>8.2f}",
          flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-sizes", default="100,1000")
    p.add_argument("--particles", default="1,8")
    p.add_argument("--estimators", default="mc,analytic")
    p.add_argument("--step", default="auto", help="pyrovae's step: auto, jit, cuda-graph, compiled or eager")
    p.add_argument("--repeats", type=int, default=21, help="interleaved rounds; the median is reported")
    p.add_argument("--inner", type=int, default=10, help="steps per contender per round")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--out", default=None, help="JSON file (default benchmarks/results/bench_step_<device>.json)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    if args.threads:
        torch.set_num_threads(args.threads)
    ints = lambda s: [int(v) for v in s.split(",")]  # noqa: E731
    print(f"{'device':>6} {'M':>5} {'L':>2} {'est':>8} {'pyrovae':>9} {'torch':>9} {'pyro':>9} "
          f"{'ours/pt':>9} {'pyro/pt':>9} {'floor':>8}   (ms per step; floor = compute-floor fraction)")
    for name in args.devices.split(","):
        device = torch.device(name)
        rate = matmul_rate(device)
        rows = [measure(device, b, l, e, args, rate) for b in ints(args.batch_sizes) for l in ints(args.particles)
                for e in args.estimators.split(",")]
        for r in rows:
            print_row(r)
        out = Path(args.out or f"benchmarks/results/bench_step_{device.type}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"command": "python benchmarks/bench_step.py " + " ".join(sys.argv[1:]),
                                   "environment": environment(device), "matmul_flops_per_s": rate,
                                   "rows": rows}, indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()

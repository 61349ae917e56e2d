"""Train the same VAE with each training step and compare their epoch times and results.

``fit(..., step=NAME)`` chooses how a training step runs (docs/performance.md):

* ``eager``: Pyro's ``differentiable_loss``, ``backward`` and one fused optimizer step;
* ``jit``: the loss recorded once per minibatch shape with ``torch.jit.trace`` (the CPU default);
* ``compiled``: the loss and its gradient captured below Pyro with ``make_fx`` and compiled by
  Inductor; the first step of each shape compiles (seconds; a minute with a cold cache), the
  compiled graph is cached on disk for the next run.

All three compute the same numbers (``compiled`` to rounding, the others bit for bit), so
the train ELBOs printed below agree; the epoch times show what each costs. ``--threads`` is the
training option of the same name: on a machine where another process is busy, ``--threads 1``
keeps epochs from stalling.

Usage::

    python examples/compiled_step.py                      # 784-400-20 on mnist-5k, 3 epochs, every step
    python examples/compiled_step.py --steps jit compiled --threads 1
    python examples/compiled_step.py --smoke              # a tiny model, eager and jit only, one thread

``--smoke`` (what CI runs) leaves ``compiled`` out unless named, because a cold compile takes
longer than a smoke run may.
"""

from __future__ import annotations

import argparse

import pyro
import torch

from pyrovae import VAE, fit, load_dataset


def train(step: str, data, hidden: int, z_dim: int, epochs: int, rows: int, threads) -> dict:
    """One run with ``step``: its per-epoch seconds and final train ELBO (nats per point)."""
    pyro.set_rng_seed(0)
    vae = VAE(784, z_dim, hidden=(hidden,))
    result = fit(vae, data.train[:rows], estimator="analytic", epochs=epochs, batch_size=100, seed=0,
                 dynamic_binarization=True, device="cpu", progress=False, step=step, threads=threads)
    totals = [0.0] + [m["seconds"] for m in result.metrics]
    return {"seconds": [b - a for a, b in zip(totals, totals[1:])], "elbo": result.metrics[-1]["train_elbo"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", nargs="+", default=None, help="default: eager jit compiled (eager jit with --smoke)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="CPU threads of training (default: torch's)")
    p.add_argument("--smoke", action="store_true", help="a 784-16-2 model, 1 epoch on 500 rows, one thread")
    args = p.parse_args()
    data = load_dataset("mnist-5k", binarize="none")
    steps = args.steps or (["eager", "jit"] if args.smoke else ["eager", "jit", "compiled"])
    size = dict(hidden=16, z_dim=2, epochs=1, rows=500) if args.smoke else \
        dict(hidden=400, z_dim=20, epochs=args.epochs, rows=len(data.train))
    print(f"{'step':>9}  {'first epoch':>11}  {'later epochs':>12}  train ELBO")
    for step in steps:
        run = train(step, data, threads=args.threads or (1 if args.smoke else None), **size)
        later = run["seconds"][1:]
        shown = f"{sum(later) / len(later):10.3f} s" if later else f"{'-':>12}"
        print(f"{step:>9}  {run['seconds'][0]:9.3f} s  {shown}  {run['elbo']:.3f}")
    print(f"torch threads outside training: {torch.get_num_threads()} (fit restores them)")


if __name__ == "__main__":
    main()

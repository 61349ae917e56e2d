"""Wall time of training epochs and of an importance-sampled log p(x): pyrovae against the alternatives.

Epochs (the 784-400-20 VAE, M = ``--batch``, Adam 1e-3, SGVB-B unless ``--estimator``, every
training set binarized afresh every epoch), in ``--rounds`` interleaved rounds of ``--epochs``
epochs per contender (the order rotates each round, so machine noise hits all alike):

* ``pyrovae``: :func:`pyrovae.fit` with ``--step`` (default ``auto``), data on the device;
* ``compiled``: the same with ``step="compiled"`` (loss and gradient compiled by Inductor);
* ``torch``: the hand-written PyTorch loop (fused Adam) over a device-resident, reshuffled set;
* ``pyro``: the plain Pyro pattern: a ``DataLoader`` and ``SVI.step`` with a ``PyroOptim``;
* ``numpyro``: NumPyro on JAX, the whole epoch one jitted ``lax.scan`` of ``svi.update``
  (``benchmarks/numpyro_vae.py``; skipped, with a note, where JAX is not installed:
  ``pip install -e ".[bench]"``).

The first epoch of each round includes set-up (pyrovae: recording or compiling the step), so
the steady-state median and worst epoch leave it out. ``--busy`` runs every contender's epochs
twice per round, once quietly and once beside one busy CPU-bound process (started before, killed
after), and reports how much each slows down.

log p(x) with K importance samples on ``--ll-points`` test points (0: skip):

* ``pyrovae``: :func:`pyrovae.log_likelihood`;
* ``torch``: the same estimator written by hand, in row chunks;
* ``pyro``: Pyro's ``vectorized_importance_weights`` on ``vae.model``/``vae.guide``, in row chunks.

    python benchmarks/bench_epoch.py                          # fashion-mnist (60,000) if installed
    python benchmarks/bench_epoch.py --dataset mnist-5k --ll-samples 5000 --ll-points 1000
    python benchmarks/bench_epoch.py --dataset mnist-5k --ll-points 0 --busy
    python benchmarks/bench_epoch.py --dataset mnist-5k --rounds 1 --epochs 2 --ll-points 0   # smoke
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Dict, List

import torch
from pyro.infer.importance import vectorized_importance_weights

from baselines import HandwrittenVAE, environment, synchronize
from contenders import CONTENDERS, busy_process, fresh_vae
from numpyro_vae import available as numpyro_available
from pyrovae import load_dataset, log_likelihood


def contenders(names: List[str], train: torch.Tensor, device: torch.device, args) -> Dict[str, object]:
    """The named loops, built; NumPyro is left out, with a note, where JAX is not installed."""
    out = {}
    for name in names:
        if name == "numpyro" and not numpyro_available():
            print("note: numpyro skipped: JAX/NumPyro not installed (pip install -e '.[bench]')")
            continue
        out[name] = CONTENDERS[name](train, device, args.estimator, args.batch, args)
    return out


def epoch_rounds(loops: Dict[str, object], rounds: int, epochs: int, busy: bool) -> Dict[str, Dict[str, list]]:
    """``{condition: {contender: [[seconds of each epoch] per round]}}``, conditions ``quiet`` (and ``busy``)."""
    conditions = ("quiet", "busy") if busy else ("quiet",)
    times = {c: {name: [] for name in loops} for c in conditions}
    names = list(loops)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate who goes first
            for condition in conditions:
                with busy_process(condition == "busy"):
                    times[condition][name].append(loops[name].run(epochs))
    return times


def summarize(per_round: List[List[float]]) -> Dict[str, object]:
    """First epoch (median over rounds) and the steady state: median and worst of the later epochs."""
    steady = [s for epochs in per_round for s in epochs[1:]] or [epochs[0] for epochs in per_round]
    return {"first": statistics.median(epochs[0] for epochs in per_round), "median": statistics.median(steady),
            "worst": max(steady), "epochs": per_round}


def ratios(summary: Dict[str, Dict[str, dict]]) -> Dict[str, Dict[str, float]]:
    """Median epoch against hand-written PyTorch and NumPyro; busy against quiet (median and worst)."""
    quiet = summary["quiet"]
    out = {}
    for name, s in quiet.items():
        r = {f"vs_{ref}": s["median"] / quiet[ref]["median"] for ref in ("torch", "numpyro") if ref in quiet}
        if "busy" in summary:
            busy = summary["busy"][name]
            r.update(busy_median_vs_quiet=busy["median"] / s["median"], busy_worst_vs_quiet=busy["worst"] / s["median"])
        out[name] = r
    return out


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
    p.add_argument("--step", default="auto", help="the step of the pyrovae contender")
    p.add_argument("--batch", type=int, default=100, help="minibatch size M")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    p.add_argument("--epochs", type=int, default=3, help="epochs per contender per round (the first is set-up)")
    p.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated: " + ", ".join(CONTENDERS))
    p.add_argument("--busy", action="store_true", help="also run every contender beside one busy process")
    p.add_argument("--threads", type=int, default=None, help="torch threads of every torch contender")
    p.add_argument("--ll-samples", type=int, default=5000)
    p.add_argument("--ll-points", type=int, default=1000, help="0 skips the log p(x) timing")
    p.add_argument("--out", default=None, help="default benchmarks/results/bench_epoch_<device>[_m<M>][_busy].json")
    return p.parse_args()


def load(name):
    if name is not None:
        return load_dataset(name, binarize="none")
    try:
        return load_dataset("fashion-mnist", binarize="none")
    except Exception:  # noqa: BLE001 - not installed here: fall back to the embedded set
        return load_dataset("mnist-5k", binarize="none")


def print_epochs(summary: dict, ratio: dict, data, args, device: torch.device) -> None:
    """One table per condition: first epoch, steady median and worst, and the ratios (``vs_*`` quiet,
    ``busy_*`` under contention)."""
    for condition, rows in summary.items():
        print(f"{condition}: epochs of {len(data.train)} points at M={args.batch} on {device} ({data.name}), "
              f"{args.rounds} rounds of {args.epochs}:")
        print(f"  {'':>9} {'first':>8} {'median':>8} {'worst':>8}   ratios (median epoch)")
        prefix = {"quiet": "vs_", "busy": "busy_"}[condition]
        for name, s in rows.items():
            shown = ", ".join(f"{k} {v:.2f}" for k, v in ratio[name].items() if k.startswith(prefix))
            print(f"  {name:>9} {s['first']:8.3f} {s['median']:8.3f} {s['worst']:8.3f}   {shown}")


def main() -> None:
    args = parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = load(args.dataset)
    loops = contenders(args.contenders.split(","), torch.as_tensor(data.train, dtype=torch.float32), device, args)
    times = epoch_rounds(loops, args.rounds, args.epochs, args.busy)
    summary = {c: {name: summarize(t) for name, t in rows.items()} for c, rows in times.items()}
    ratio = ratios(summary)
    print_epochs(summary, ratio, data, args, device)
    result = {"command": "python benchmarks/bench_epoch.py " + " ".join(sys.argv[1:]),
              "environment": environment(device), "dataset": data.name, "train_points": len(data.train),
              "batch": args.batch, "estimator": args.estimator, "epoch_seconds": summary, "ratios": ratio}
    if args.ll_points:
        test = torch.bernoulli(torch.as_tensor(data.test[: args.ll_points], dtype=torch.float32),
                               generator=torch.Generator().manual_seed(0))
        ll = ll_times(test, device, args.ll_samples, chunk_rows=4096 * 8 if device.type == "cuda" else 4096)
        print(f"log p(x), K={args.ll_samples}, {len(test)} points:")
        for name, r in ll.items():
            print(f"  {name:>8} {r['seconds']:8.2f} s   log p(x) = {r['log_px']:.2f}")
        result["log_likelihood"] = {"samples": args.ll_samples, "points": len(test), **ll}
    suffix = (f"_m{args.batch}" if args.batch != 100 else "") + ("_busy" if args.busy else "")
    out = Path(args.out or f"benchmarks/results/bench_epoch_{device.type}{suffix}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

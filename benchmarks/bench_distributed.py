"""Training throughput against the number of data-parallel processes (torchrun), on CPU or CUDA.

For each process count P it runs ``torchrun --nproc_per_node=P -m pyrovae train`` for
``--epochs`` epochs (same seed, same global batch, so the same model for every P) and reads
the per-epoch training seconds from the run's ``metrics.json``. The first epoch includes
start-up (recording a step, allocations) and is left out: throughput is training rows per
second over the later epochs. On CPU the machine's cores are split evenly between the
processes (``OMP_NUM_THREADS``), so every row uses the whole machine.

Rows of the table:

* ``1 process (auto)``: the single-process default step (``jit`` on CPU, a CUDA graph on CUDA);
* ``1 process (eager)``: the same step without recording, which is what every rank runs;
* ``P processes``: P ranks, gloo on CPU and NCCL on CUDA (one GPU each).

    python benchmarks/bench_distributed.py                                   # CPU, 1 and 2 processes
    python benchmarks/bench_distributed.py --device cuda --processes 1 2 4 8   # GPUs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from baselines import environment

ROOT = Path(__file__).resolve().parents[1]


def run(processes: int, args: argparse.Namespace, step: str, folder: Path) -> dict:
    """One training run; returns its seconds per epoch and throughput."""
    out = folder / f"p{processes}-{step}"
    threads = max(1, (os.cpu_count() or 1) // processes) if args.device == "cpu" else 1
    env = {**os.environ, "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    cmd = [*launch, "-m", "pyrovae", "train", "--dataset", args.dataset, "--epochs", str(args.epochs),
           "--batch-size", str(args.batch_size), "--device", args.device, "--step", step, "--out", str(out),
           "--no-progress", "--no-figures"]
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    metrics = json.loads((out / "metrics.json").read_text())
    seconds = [b["seconds"] - a["seconds"] for a, b in zip([{"seconds": 0.0}] + metrics, metrics)]
    rows = metrics[0]["samples_seen"]
    later = seconds[1:] or seconds
    return {"processes": processes, "step": step, "threads_per_process": threads, "epoch_seconds": seconds,
            "rows_per_second": rows * len(later) / sum(later), "train_elbo": metrics[-1]["train_elbo"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--json", default=None, help="default: benchmarks/results/bench_distributed_<device>.json")
    args = p.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for processes in args.processes:
            steps = ["auto", "eager"] if processes == 1 else ["eager"]
            for step in steps:
                results.append(run(processes, args, step, Path(tmp)))
                r = results[-1]
                print(f"{processes} process(es), step {step:<5}: {r['rows_per_second']:9.0f} rows/s  "
                      f"epochs {', '.join(f'{s:.2f}' for s in r['epoch_seconds'])} s", flush=True)

    base = next(r for r in results if r["processes"] == 1 and r["step"] == "eager")["rows_per_second"]
    print("\n| processes | step | threads each | rows/s | vs 1 process (eager) | final train ELBO |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['processes']} | {r['step']} | {r['threads_per_process']} | {r['rows_per_second']:.0f} | "
              f"{r['rows_per_second'] / base:.2f}x | {r['train_elbo']:.3f} |")
    record = {"benchmark": "bench_distributed", "command": " ".join(["python", *sys.argv]),
              "dataset": args.dataset, "batch_size": args.batch_size, "epochs": args.epochs,
              "environment": {**environment(torch.device(args.device if args.device == "cpu" else "cuda")),
                              "cpu_count": os.cpu_count()},
              "results": results}
    path = Path(args.json or ROOT / "benchmarks" / "results" / f"bench_distributed_{args.device}.json")
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

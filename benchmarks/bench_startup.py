"""Whole-process costs a new user sees: ``pyrovae --help``, and a short ``pyrovae train`` against the
same training written as Pyro's own example does it (``benchmarks/pyro_example_vae.py``).

Each contender runs as a fresh process, interleaved round by round, and the table reports medians
and the ratio pyrovae / Pyro example. Both train 784-400-20 on mnist-5k for the same epochs and
report their final test ELBO (nats per point), so the ratio compares equal work.

    python benchmarks/bench_startup.py --rounds 3 --epochs 10
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list, cwd: Path) -> tuple:
    """Wall seconds of one process, and its stdout."""
    start = time.perf_counter()
    run = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{run.stderr[-2000:]}")
    return seconds, run.stdout


def last_elbo(stdout: str, pattern: str) -> float:
    return float(re.findall(pattern, stdout)[-1])


def one_round(epochs: int, tmp: Path, i: int) -> dict:
    """One timing of each contender (the order alternates, so neither always runs first)."""
    py = sys.executable
    runs = {
        "help": lambda: timed([py, "-m", "pyrovae", "--help"], ROOT),
        "pyrovae train": lambda: timed([py, "-m", "pyrovae", "train", "--epochs", str(epochs), "--device", "cpu",
                                        "--no-progress", "--out", str(tmp / f"run{i}")], ROOT),
        "pyro example": lambda: timed([py, str(ROOT / "benchmarks" / "pyro_example_vae.py"), "--epochs",
                                       str(epochs)], ROOT),
    }
    order = list(runs) if i % 2 == 0 else list(reversed(runs))
    out = {}
    for name in order:
        seconds, stdout = runs[name]()
        out[name] = {"seconds": seconds}
        if name == "pyrovae train":
            out[name]["test_elbo"] = last_elbo(stdout, r"test ELBO \(mc\): (-?[\d.]+)")
        elif name == "pyro example":
            out[name]["test_elbo"] = last_elbo(stdout, r"test ELBO (-?[\d.]+)")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_startup_cpu.json"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rounds = [one_round(args.epochs, Path(tmp), i) for i in range(args.rounds)]
    table = {name: {"median_seconds": statistics.median(r[name]["seconds"] for r in rounds),
                    **({"test_elbo": statistics.median(r[name]["test_elbo"] for r in rounds)}
                       if "test_elbo" in rounds[0][name] else {})} for name in rounds[0]}
    ratio = table["pyrovae train"]["median_seconds"] / table["pyro example"]["median_seconds"]
    print(f"{'process':<15} {'median s':>9} {'test ELBO':>10}")
    for name, row in table.items():
        print(f"{name:<15} {row['median_seconds']:>9.2f} {row.get('test_elbo', float('nan')):>10.2f}")
    print(f"pyrovae train / pyro example: {ratio:.2f}x")
    Path(args.out).write_text(json.dumps({
        "command": f"python benchmarks/bench_startup.py --rounds {args.rounds} --epochs {args.epochs}",
        "torch": torch.__version__, "cpus": torch.get_num_threads(), "rounds": rounds, "table": table,
        "ratio_pyrovae_over_pyro_example": ratio}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

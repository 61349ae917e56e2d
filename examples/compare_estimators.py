"""Compare ELBO estimators side by side from Python: the paper's Figure 2 protocol, and gradients.

``pyrovae.compare`` trains the same VAE once per (estimator, latent size, seed)
from the same initial weights on the same minibatch sequence, and probes the
gradients of every estimator at the same parameters during training.
``pyrovae.report.write_report`` turns the records into ``report.md`` (tables,
verdicts, gradient-variance ratios with bootstrap intervals) and figures. This
script runs five estimators with L = K = 5 samples per point, ``mc`` (SGVB-A),
``analytic`` (SGVB-B), ``stl``, ``iwae`` and ``dreg``, on mnist-5k with 10
latent dimensions, and copies the figures to ``docs/tutorials/img/``, where the
tutorial "Comparing estimators" shows them.

    python examples/compare_estimators.py                        # 10 training runs; 27 minutes on a busy 2-core CPU
    python examples/compare_estimators.py --smoke                # seconds: 2 estimators, 1 epoch, 1 seed
    python examples/compare_estimators.py --out runs/my-compare  # keep report.md and report.json there
    python examples/compare_estimators.py --samples 1e5 --out runs/my-compare --resume  # a budget in samples;
                                                                 # continue there after an interruption
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
from pathlib import Path

import torch

import pyrovae
from pyrovae.options import count
from pyrovae.report import write_report

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "img"
FULL = dict(estimators=["mc", "analytic", "stl", "iwae", "dreg"], latent_dims=[10], seeds=2, epochs=10,
            particles=5, ll_samples=500, grad_repeats=20)
SMOKE = dict(estimators=["mc", "analytic"], latent_dims=[2], seeds=1, epochs=1, particles=2, ll_samples=10,
             grad_repeats=3, curve_points=4)


def smoke_subset(data: pyrovae.Dataset, rows: int = 500) -> pyrovae.Dataset:
    """A fixed random subset of the training rows (the rows are sorted by digit)."""
    keep = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))[:rows]
    return dataclasses.replace(data, train=data.train[keep], train_labels=data.train_labels[keep])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Compare ELBO estimators on mnist-5k with pyrovae.compare.")
    p.add_argument("--smoke", action="store_true", help="a seconds-long check on 500 training rows")
    p.add_argument("--out", type=Path, default=None, help="report folder (default: a temporary folder)")
    p.add_argument("--samples", type=count, default=None, help="training samples per run, e.g. 1e5 (default: epochs)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted comparison in --out")
    p.add_argument("--figures", type=Path, default=None,
                   help=f"where the figures are copied (default {FIGURES}; none with --smoke)")
    args = p.parse_args(argv)
    grid = {**(SMOKE if args.smoke else FULL), "samples": args.samples}

    data = pyrovae.load_dataset("mnist-5k", binarize="dynamic")
    if args.smoke:
        data = smoke_subset(data)
    out = args.out or Path(tempfile.mkdtemp()) / "compare"
    result = pyrovae.compare(data, device="cpu", on_run=_progress, out=str(out), resume=args.resume, **grid)
    report = write_report(result, str(out))
    print((out / "report.md").read_text())

    # Every estimator is scored on the same quantity (the mc ELBO), and must have learned something.
    for cell, stats in report["summary"].items():
        assert stats["test_elbo"]["mean"] > -550, f"{cell} did not train"
    figures = args.figures or (None if args.smoke else FIGURES)
    if figures is not None:
        figures.mkdir(parents=True, exist_ok=True)
        for name in ("figure2.png", "grad_variance.png"):
            shutil.copyfile(out / name, figures / f"compare_{name}")
        print(f"figures: {figures}")


def _progress(run: dict) -> None:
    print(f"done: {run['estimator']:<9} Nz={run['z_dim']} seed={run['seed']} "
          f"test ELBO {run['final_elbo']['mc']:.2f}", flush=True)


if __name__ == "__main__":
    main()

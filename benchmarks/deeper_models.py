"""Deeper models at equal epochs: test ELBO and importance-sampled log p(x), over seeds.

Each named model below is one ``pyrovae.VAE``, trained with ``fit`` for the same epochs, data
order, optimizer (Adam 1e-3, M = 100) and seeds on one dataset; then the test ELBO (10 particles)
and log p(x) by importance sampling (K samples on the first ``--test-rows`` test points, the same
points for every model). Prints mean ± standard error over seeds and paired differences against
the first model, and writes JSON (merged with earlier rows of the same file, so groups of models
can be measured separately). Every finished run is written at once, and running the same command
again reuses the runs it finds, so an interrupted comparison continues where it stopped. Each
run also keeps its fit folder under ``--work`` (checkpoint per epoch): an interrupted run resumes
from its last epoch, and the same models evaluated again with another ``--samples`` or
``--test-rows`` are reloaded instead of trained again.

    python benchmarks/deeper_models.py --models normal,iaf,iaf-global,vamp --dataset mnist-5k --seeds 0,1,2
    python benchmarks/deeper_models.py --models mlp,conv --dataset mnist-5k --seeds 0,1,2
    python benchmarks/deeper_models.py --models one-layer,two-layer --estimator iwae --particles 5 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any, Dict, Optional

import pyro

import pyrovae

#: Model name -> VAE keyword arguments (x_dim and image_shape come from the data).
MODELS = {
    "normal": dict(z_dim=20, hidden=(400,)),
    "iaf": dict(z_dim=20, hidden=(400,), posterior="iaf"),  # amortized (Kingma et al. 2016)
    "iaf-global": dict(z_dim=20, hidden=(400,), posterior="iaf-global"),
    "vamp": dict(z_dim=20, hidden=(400,), prior="vamp"),  # Tomczak & Welling 2018, K = 500
    "mlp": dict(z_dim=20, hidden=(256,)),
    "conv": dict(z_dim=20, hidden=(256,), arch="conv"),
    # Burda et al. (2015), Table 1: 784-200-200-50, and 784-100-100-z1(100)-50-50-z2(50).
    "one-layer": dict(z_dim=50, hidden=(200, 200)),
    "two-layer": dict(z_dim=(100, 50), hidden=((100, 100), (50, 50))),
}


def fit_in(folder: Optional[Path], vae, train, **options: Any) -> pyrovae.FitResult:
    """``pyrovae.fit`` with its run folder kept in ``folder`` (None: none): a run interrupted
    mid-way resumes from its last epoch (on CPU, as if uninterrupted), and a finished one is
    reloaded without training."""
    return pyrovae.fit(vae, train, out=None if folder is None else str(folder),
                       resume=folder is not None and pyrovae.RunFolder(folder).exists(), **options)


def saved(out: Path) -> Dict[str, Any]:
    """Every entry of a results JSON file (empty if there is none yet)."""
    return json.loads(out.read_text()) if out.exists() else {}


def run(name: str, seed: int, data, args) -> dict:
    """Train one model with one seed and measure it."""
    pyro.set_rng_seed(seed)
    vae = pyrovae.VAE(data.x_dim, image_shape=data.image_shape, **MODELS[name])
    # A finished run is reloaded without training when only the evaluation differs (another
    # --samples or --test-rows).
    folder = None if not args.work else \
        Path(args.work) / f"{args.dataset}-{name}-{args.estimator}-x{args.particles}-e{args.epochs}-seed{seed}"
    result = fit_in(folder, vae, data.train, test=None, estimator=args.estimator, num_particles=args.particles,
                    epochs=args.epochs, seed=seed, dynamic_binarization=data.dynamic, device="cpu",
                    progress=False, figures=False)
    test = data.test[:args.test_rows]
    start = time.perf_counter()
    ll = pyrovae.log_likelihood(vae, test, num_samples=args.samples, seed=seed)
    return {"model": name, "seed": seed, "kl_routes": result.summary["kl_routes"],
            "test_elbo": pyrovae.evaluate_elbo(vae, test, "mc", num_particles=10, seed=seed),
            "log_likelihood": ll, "train_seconds": result.summary["train_seconds"],
            "ll_seconds": time.perf_counter() - start}


def mean_se(values) -> tuple:
    values = list(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return statistics.mean(values), se


def table(rows, models) -> str:
    """Mean ± s.e. over seeds per model, and the paired difference against the first model."""
    lines = ["| model | seeds | test ELBO | log p(x) | log p(x) - first model's, paired | train s |",
             "|---|---|---|---|---|---|"]
    by = {m: {r["seed"]: r for r in rows if r["model"] == m} for m in models}
    for m in models:
        seeds = sorted(set(by[m]) & set(by[models[0]]))
        elbo, ll = mean_se(by[m][s]["test_elbo"] for s in seeds), mean_se(by[m][s]["log_likelihood"] for s in seeds)
        diff = mean_se(by[m][s]["log_likelihood"] - by[models[0]][s]["log_likelihood"] for s in seeds)
        secs = statistics.mean(by[m][s]["train_seconds"] for s in seeds)
        lines.append(f"| `{m}` | {len(seeds)} | {elbo[0]:.2f} ± {elbo[1]:.2f} | {ll[0]:.2f} ± {ll[1]:.2f} | "
                     f"{diff[0]:+.2f} ± {diff[1]:.2f} | {secs:.1f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="normal,iaf,iaf-global,vamp")
    p.add_argument("--dataset", default="mnist-5k")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--estimator", default="auto")
    p.add_argument("--particles", type=int, default=1)
    p.add_argument("--samples", type=int, default=1000, help="importance samples K for log p(x)")
    p.add_argument("--test-rows", type=int, default=500)
    p.add_argument("--out", default=None, help="JSON file (default benchmarks/results/deeper_<dataset>.json)")
    p.add_argument("--work", default="runs/deeper_models",
                   help="folder of each run's checkpoints (\"\": none; none with --smoke)")
    p.add_argument("--smoke", action="store_true", help="one seed, one epoch, tiny evaluation")
    args = p.parse_args()
    if args.smoke:
        args.seeds, args.epochs, args.samples, args.test_rows, args.work = "0", 1, 10, 20, None
    models, seeds = args.models.split(","), [int(s) for s in args.seeds.split(",")]
    data = pyrovae.load_dataset(args.dataset)
    out = Path(args.out or f"benchmarks/results/deeper_{args.dataset}.json")
    key = f"{','.join(models)} | {args.estimator} x{args.particles}, {args.epochs} epochs, K={args.samples}, " \
          f"{args.test_rows} test rows"
    kept = {} if args.smoke else {(r["model"], r["seed"]): r for r in saved(out).get(key, {}).get("rows", [])}
    rows = []
    for s in seeds:  # seed-major: every model sees each seed
        for m in models:
            rows.append(kept.get((m, s)) or run(m, s, data, args))
            if not args.smoke:  # each finished run is kept, and reused when the same command runs again
                _save(out, key, args, rows, models, complete=len(rows) == len(seeds) * len(models))
    print(table(rows, models))
    if not args.smoke:
        print(f"wrote {out}")


def _save(out: Path, key: str, args, rows, models, complete: bool) -> None:
    """Merge this command's rows so far into ``out``; the table once every run is done."""
    entries = saved(out)
    entries[key] = {"command": "python benchmarks/deeper_models.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("out", "smoke", "work")),
        "rows": rows, "table": table(rows, models) if complete else None}
    out.write_text(json.dumps(entries, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""The IWAE paper's Table 1: VAE against IWAE objectives, K = 1, 5, 50, one and two stochastic layers.

Burda, Grosse & Salakhutdinov (2015), "Importance Weighted Autoencoders", Table 1. For each
architecture (``one-layer``, 784-200-200-50, and ``two-layer``, 784-100-100-z1(100)-50-50-z2(50):
the entries of ``MODELS`` in ``deeper_models.py``) and each K, one ``pyrovae.VAE`` is trained on
the VAE bound averaged over K samples (estimator ``mc``, ``num_particles=K``) and one on the IWAE
bound L_K (eq. 8; estimator ``iwae``, ``num_particles=K``). At K = 1 both are the ELBO, so that
model is trained once and fills both columns. Every model gets the same data order, optimizer
(Adam 1e-3, M = 100), epochs and seeds on one dynamically binarized dataset; then, on the first
``--test-rows`` test points: the test NLL = -log p(x) by importance sampling with
K = ``--ll-samples`` (5000, as in the paper), the test ELBO (10 particles) and the active units of
each stochastic layer (A_u = Cov_x(E_q(u|x)[u]) > 1e-2, section 5.2). Prints a Markdown table
shaped like Table 1 (mean ± standard error over seeds) under a line stating the budget, and writes
JSON with every run, the command line and the budget (merged with earlier entries of the same
file, as deeper_models.py does). Each run is saved as it finishes and reused when the same command
runs again, and each run keeps a checkpoint per epoch under ``--work``, so an interrupted table
continues where it stopped, inside a run too.

    python benchmarks/iwae_table.py --dataset fashion-mnist --epochs 5 --seeds 0
    python benchmarks/iwae_table.py --dataset mnist-5k --epochs 10 --seeds 0,1,2
    python benchmarks/iwae_table.py --smoke --dataset mnist-5k --out /tmp/iwae_smoke.json
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, NamedTuple, Sequence, Tuple

import pyro
import torch

import pyrovae
from deeper_models import MODELS, fit_in, mean_se, saved
from pyrovae.evaluate import seeded
from pyrovae.summaries import posterior_point

#: Objective -> pyrovae estimator. VAE: the ELBO averaged over K samples (Kingma & Welling 2013,
#: eq. 6); IWAE: L_K = E[log 1/K sum_k w_k], w_k = p(x, z_k) / q(z_k|x) (Burda et al. 2015, eq. 8).
OBJECTIVES = {"vae": "mc", "iwae": "iwae"}

#: Model name -> the architecture as Burda et al. (2015, section 5) write it.
ARCHITECTURES = {"one-layer": "784-200-200-50", "two-layer": "784-100-100-z1(100)-50-50-z2(50)"}

#: Training options of every run, as deeper_models.py trains (fit's defaults, stated here).
TRAINING = dict(optimizer="adam", lr=1e-3, batch_size=100)

#: A unit u is active when A_u = Cov_x(E_q(u|x)[u]) exceeds this (Burda et al. 2015, section 5.2).
THRESHOLD = 1e-2

#: Particles of the test ELBO, as deeper_models.py.
ELBO_PARTICLES = 10

#: What --smoke shrinks: a few hundred training rows, 1 epoch, K in {1, 2}, a tiny evaluation.
SMOKE = dict(train_rows=300, epochs=1, ks="1,2", ll_samples=10, test_rows=20, seeds="0", unit_draws=4)

#: Where the committed results live; smoke runs never write there.
RESULTS = Path(__file__).resolve().parent / "results"

FOOTNOTE = ("† K = 1: the VAE and IWAE objectives are the same bound (L_1 is the ELBO; Burda et al. 2015, "
            "eq. 8), trained once with `mc`; its numbers fill both columns.")


class Job(NamedTuple):
    """One training: the objectives (table columns) it stands for, its estimator and its K."""
    objectives: Tuple[str, ...]
    estimator: str
    k: int


def jobs(ks: Sequence[int]) -> List[Job]:
    """The trainings for each K: one per objective, one for both at K = 1 (L_1 is the ELBO, eq. 8)."""
    out = []
    for k in ks:
        if k == 1:
            out.append(Job(tuple(OBJECTIVES), OBJECTIVES["vae"], 1))
        else:
            out.extend(Job((objective,), estimator, k) for objective, estimator in OBJECTIVES.items())
    return out


@torch.no_grad()
def site_means(vae, x: torch.Tensor, draws: int) -> Dict[str, torch.Tensor]:
    """Two estimates of ``E_q(z_l|x)[z_l]`` for every stochastic layer l, bottom-up: ``{site: (2, N, z_l)}``.

    ``z_1``: the mean of ``q(z_1|x)`` (``posterior_point``, as ``pyrovae.active_units``), exact, so
    both estimates are equal. Above it the marginal ``q(z_{l+1}|x) = E_q(z_l|x)[q(z_{l+1}|z_l)]`` has
    no closed form, so its mean ``E_q(z_l|x)[mean of q(z_{l+1}|z_l)]`` is averaged over ancestral
    samples of the guide, each half of the ``draws`` giving one independent estimate.
    """
    names, q = vae.layers.names, vae.encode(x)
    means = {names[0]: posterior_point(q).expand(2, -1, -1)}
    z = q.sample((draws,))  # (draws, N, z_1)
    for name, net in zip(names[1:], vae.layers.up):
        q = net(z)  # q(z_{l+1} | z_l) at each draw
        means[name] = posterior_point(q).unflatten(0, (2, draws // 2)).mean(1)
        z = q.sample()
    return means


def split_half_covariance(halves: torch.Tensor) -> torch.Tensor:
    """``Cov_x`` of two independent estimates ``(2, N, d)`` of each row's mean, per unit.

    Their noises are independent, so it estimates ``Var_x(E_q[u|x])`` without the Monte-Carlo
    noise that the variance of one estimate adds (``Var_q[mean|x]`` over its number of draws;
    Burda et al.'s code takes one draw). For exact means it is their variance (``N - 1`` denominator, as ``torch.var``).
    """
    a, b = halves - halves.mean(1, keepdim=True)
    return (a * b).sum(0) / (halves.shape[1] - 1)


@torch.no_grad()
def layer_activity(vae, x: torch.Tensor, draws: int, seed: int, batch_size: int = 200) -> Dict[str, torch.Tensor]:
    """Per stochastic layer, each unit's ``A_u = Cov_x(E_q(u|x)[u])`` over the rows ``x`` (Burda et
    al. 2015, section 5.2; the diagonal of the covariance, as ``pyrovae.active_units``)."""
    x = x.to(next(vae.parameters()).device)
    with seeded(seed, x.device):  # the guide's draws leave the global stream alone
        parts = [site_means(vae, x[i:i + batch_size], draws) for i in range(0, len(x), batch_size)]
    return {site: split_half_covariance(torch.cat([p[site] for p in parts], 1)) for site in vae.layers.names}


def run(name: str, job: Job, seed: int, data, args) -> Dict[str, Any]:
    """Train model ``name`` on ``job``'s objective with one seed; measure NLL, test ELBO and active units."""
    pyro.set_rng_seed(seed)
    vae = pyrovae.VAE(data.x_dim, image_shape=data.image_shape, **MODELS[name])
    # A fit folder per run: K = 50 runs take half an hour, and an interrupted one resumes.
    folder = None if args.work is None else args.work / f"{name}-{job.estimator}-k{job.k}-seed{seed}"
    result = fit_in(folder, vae, data.train[:args.train_rows], test=None, estimator=job.estimator,
                    num_particles=job.k, epochs=args.epochs, seed=seed, dynamic_binarization=data.dynamic,
                    device="cpu", progress=False, figures=False, **TRAINING)
    test = data.test[:args.test_rows]
    start = time.perf_counter()
    ll = pyrovae.log_likelihood(vae, test, num_samples=args.ll_samples, seed=seed)
    ll_seconds = time.perf_counter() - start
    activity = layer_activity(vae, test, args.unit_draws, seed)
    return {"model": name, "objectives": list(job.objectives), "estimator": job.estimator, "k": job.k,
            "seed": seed, "test_nll": -ll, "log_likelihood": ll,
            "test_elbo": pyrovae.evaluate_elbo(vae, test, "mc", num_particles=ELBO_PARTICLES, seed=seed),
            "active_units": {site: int((a > THRESHOLD).sum()) for site, a in activity.items()},
            "activity": {site: a.tolist() for site, a in activity.items()},
            "kl_routes": result.summary["kl_routes"], "train_seconds": result.summary["train_seconds"],
            "ll_seconds": ll_seconds}


def fmt(values: Iterable[float]) -> str:
    """Mean ± standard error over seeds (the mean alone for one seed)."""
    mean, se = mean_se(values)
    return f"{mean:.2f}" if math.isnan(se) else f"{mean:.2f} ± {se:.2f}"


def cell(rows: List[Dict[str, Any]]) -> List[str]:
    """NLL, active units per layer (``z1+z2``, mean over seeds) and test ELBO of one table cell's runs."""
    units = "+".join(f"{round(statistics.mean(r['active_units'][site] for r in rows), 1):g}"
                     for site in rows[0]["active_units"])
    return [fmt(r["test_nll"] for r in rows), units, fmt(r["test_elbo"] for r in rows)]


def table(rows: List[Dict[str, Any]], models: Sequence[str], ks: Sequence[int]) -> str:
    """Rows architecture × K, columns per objective as in Burda et al. (2015), Table 1."""
    heads = [f"{o.upper()} {c}" for o in OBJECTIVES for c in ("NLL", "active units", "test ELBO")]
    lines = ["| architecture | K | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(heads)]
    for m in models:
        for k in ks:
            group = [r for r in rows if r["model"] == m and r["k"] == k]
            cells = [c for o in OBJECTIVES for c in cell([r for r in group if o in r["objectives"]])]
            lines.append(f"| {ARCHITECTURES.get(m, m)} | {k}{' †' if k == 1 else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines + (["", FOOTNOTE] if 1 in ks else []))


def budget(args, data, seeds: List[int], ks: List[int]) -> Dict[str, Any]:
    """The training and evaluation budget, as stored in the JSON and stated above the table."""
    return {"dataset": args.dataset, "binarize": data.binarize, "train_rows": len(data.train[:args.train_rows]),
            "epochs": args.epochs, **TRAINING, "seeds": seeds, "ks": ks, "ll_samples": args.ll_samples,
            "test_rows": len(data.test[:args.test_rows]), "test_elbo_particles": ELBO_PARTICLES,
            "active_unit_threshold": THRESHOLD, "unit_draws": args.unit_draws}


def describe(b: Dict[str, Any]) -> str:
    """One line stating the budget ``b``."""
    return (f"{b['dataset']} ({b['binarize']} binarization), {b['train_rows']} training rows, {b['epochs']} epochs, "
            f"Adam {b['lr']:g}, M = {b['batch_size']}, seeds {','.join(map(str, b['seeds']))}; on the first "
            f"{b['test_rows']} test rows: NLL = -log p(x) by importance sampling with K = {b['ll_samples']}, "
            f"test ELBO with {b['test_elbo_particles']} particles, active units A_u > {b['active_unit_threshold']:g}.")


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``--smoke`` shrinks every size (:data:`SMOKE`) and writes under the temp folder."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="one-layer,two-layer", help="entries of deeper_models.MODELS")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--ks", default="1,5,50", help="K of both training objectives")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seeds", default="0")
    p.add_argument("--train-rows", type=int, default=None, help="first rows of the training set (default all)")
    p.add_argument("--ll-samples", type=int, default=5000, help="importance samples K for log p(x)")
    p.add_argument("--test-rows", type=int, default=1000)
    p.add_argument("--unit-draws", type=int, default=200, help="guide draws per row for E_q[z_l|x] above z_1 (even)")
    p.add_argument("--out", default=None, help="JSON file (default benchmarks/results/iwae_table_<dataset>.json)")
    p.add_argument("--work", default=None, help="folder of each run's checkpoints, so an interrupted run "
                   "resumes from its last epoch (default runs/iwae_table_<dataset>; none with --smoke)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, for CI: " + str(SMOKE))
    args = p.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    if args.unit_draws < 2 or args.unit_draws % 2:
        p.error("--unit-draws must be an even number >= 2 (two halves of independent draws)")
    unknown = set(args.models.split(",")) - set(MODELS)
    if unknown:
        p.error(f"unknown models {sorted(unknown)}; choose from {sorted(MODELS)}")
    smoke_out = Path(tempfile.gettempdir()) / f"iwae_table_smoke_{args.dataset}.json"
    args.out = Path(args.out or (smoke_out if args.smoke else RESULTS / f"iwae_table_{args.dataset}.json"))
    args.work = None if args.smoke else Path(args.work or f"runs/iwae_table_{args.dataset}")
    if args.smoke and RESULTS in args.out.resolve().parents:
        p.error(f"--smoke does not write into {RESULTS}; give an --out elsewhere")
    return args


def main() -> None:
    """Train every model, print the budget and the table, and merge the runs into the JSON file.

    Each finished run is written at once and reused when the same command (any seeds) runs again,
    so an interrupted table continues where it stopped.
    """
    args = parse()
    models, seeds, ks = args.models.split(","), [int(s) for s in args.seeds.split(",")], \
        [int(k) for k in args.ks.split(",")]
    data = pyrovae.load_dataset(args.dataset, binarize="dynamic", seed=0)
    b = budget(args, data, seeds, ks)
    key = (f"{','.join(models)} | K {','.join(map(str, ks))} | {b['train_rows']} rows, {args.epochs} epochs | "
           f"NLL K={args.ll_samples}, {b['test_rows']} test rows")
    earlier = [] if args.smoke else saved(args.out).get(key, {}).get("rows", [])  # a smoke run trains anew
    kept = {_ident(r): r for r in earlier}
    rows = []
    for s in seeds:  # seed-major: every cell gets seed 0 first
        for m in models:
            for job in jobs(ks):
                ident = (m, job.estimator, job.k, s)
                kept[ident] = kept.get(ident) or run(m, job, s, data, args)
                rows.append(kept[ident])
                _save(args, key, b, list(kept.values()), None)
    print(describe(b) + "\n")
    print(table(rows, models, ks))
    _save(args, key, b, list(kept.values()), table(rows, models, ks))
    print(f"wrote {args.out}")


def _ident(row: Dict[str, Any]) -> Tuple[str, str, int, int]:
    """What names one run: model, estimator, K and seed."""
    return row["model"], row["estimator"], row["k"], row["seed"]


def _save(args, key: str, b: Dict[str, Any], rows: List[Dict[str, Any]], text: str | None) -> None:
    """Merge this command's runs so far into the JSON file; ``text``: the table, once every run is done."""
    entries = saved(args.out)
    entries[key] = {"command": shlex.join(["python", *sys.argv]), "budget": b, "rows": rows, "table": text}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(entries, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""The AEVB paper's Figure 2 protocol on full Fashion-MNIST, and whether its claims hold here.

Kingma & Welling 2013, section 5 and Figure 2: one tanh hidden layer of 500, Adagrad, M = 100,
L = 1, weights from N(0, 0.01^2); SGVB-A (``mc``) against SGVB-B (``analytic``), plus ``stl``, for
Nz in {3, 5, 10, 20, 200}. The grid runs through :func:`pyrovae.compare.compare` (resumable with
``--resume``, batched on CUDA) and :func:`pyrovae.report.write_report`; this driver adds to
``report.md`` what the paper claims and whether these runs agree, with 95% t-intervals over seeds
of the paired (same seed, same data order, same initial weights) differences.

    # the full protocol on CPU (45 runs, 10-16 minutes each on a shared 2-core CPU; a checkpoint per epoch):
    python benchmarks/figure2.py --samples 3e6 --seeds 3 --device cpu --batched off \
        --out benchmarks/results/figure2-fashion-mnist --resume
    python benchmarks/figure2.py --smoke --out /tmp/figure2-smoke      # a minute: tiny sizes

On two cores, two processes sharing the folder (``--shard 0/2`` and ``--shard 1/2``, each with
``OMP_NUM_THREADS=1``) finish the grid in about half the time; the same command without
``--shard`` then writes the report from the finished runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Dict, List

from pyrovae.cli.compare import shard_spec
from pyrovae.compare import compare
from pyrovae.data import load_dataset
from pyrovae.options import count
from pyrovae.report import mean_ci, write_report
from pyrovae.tables import markdown_table

#: ``--smoke``: every size shrunk so that the whole driver runs in about a minute on a CPU.
SMOKE = dict(latent_dims=[3, 5], seeds=2, samples=1000, ll_samples=10, ll_rows=50, grad_repeats=3,
             curve_points=3, grad_points=1, batched=True, rows=1000)


def claims(result: Dict[str, Any]) -> str:
    """The paper's claims as Markdown, each with the numbers that test it."""
    runs, dims = result["runs"], result["latent_dims"]
    pick = {(r["z_dim"], r["estimator"], r["seed"]): r for r in runs}
    rows, gaps = [], {}
    for z in dims:
        for what, value in (("test ELBO", lambda r: r["final_elbo"]["mc"]),
                            ("log p(x)", lambda r: r["log_likelihood"])):
            diffs = [value(pick[z, "analytic", s]) - value(pick[z, "mc", s]) for s in range(result["seeds"])]
            stat = mean_ci(diffs)
            gaps.setdefault(what, {})[z] = stat["mean"]
            rows.append([z, what, _interval(stat), _verdict(stat)])
    over = [[z, est, _interval(mean_ci([_overfit(pick[z, est, s]) for s in range(result["seeds"])]))]
            for z in dims for est in result["estimators"]]
    largest = max(gaps["test ELBO"], key=gaps["test ELBO"].get)
    return "\n".join([
        "## The paper's claims against these runs", "",
        "1. *SGVB-B (`analytic`) is at least as good as SGVB-A (`mc`)*, the gap largest at large Nz (Figure 2). "
        "Paired differences `analytic − mc` over seeds (mean ± 95% t-interval; > 0 favours `analytic`):", "",
        markdown_table(["Nz", "measure", "analytic − mc", "agrees"], rows, code=()), "",
        f"The mean test-ELBO gap is largest at Nz = {largest} "
        f"({'the largest Nz, as the paper says' if largest == max(dims) else 'not at the largest Nz'}).", "",
        "2. *No overfitting with more latent variables*, thanks to the KL term of the bound (section 5). "
        "Final train − test ELBO on the curves (mean ± 95% t-interval over seeds; near 0: no overfitting):", "",
        markdown_table(["Nz", "estimator", "train − test"], over, code=()), "",
        *(path_derivative(result, pick) if "stl" in result["estimators"] and "mc" in result["estimators"] else [])])


def path_derivative(result: Dict[str, Any], pick: Dict[tuple, Dict[str, Any]]) -> List[str]:
    """Claim 3 (Roeder et al. 2017): dropping the score term (``stl``) lowers the encoder's gradient
    variance without changing what is learned. Ratios are geometric means over seeds, each at the
    final parameters of that seed's ``mc`` run, with a 95% t-interval on the log scale."""
    rows = []
    for z in result["latent_dims"]:
        seeds = range(result["seeds"])
        diffs = mean_ci([pick[z, "stl", s]["final_elbo"]["mc"] - pick[z, "mc", s]["final_elbo"]["mc"] for s in seeds])
        ratios = {e: _geometric([_final_ratio(pick[z, "mc", s], e) for s in seeds]) for e in ("analytic", "stl")}
        rows.append([z, _interval(diffs), _verdict(diffs), ratios["stl"], ratios["analytic"]])
    return ["3. *The path derivative (`stl`) has lower gradient variance than the full estimator and learns "
            "the same model* (Roeder et al. 2017). Paired test-ELBO differences `stl − mc`, and the encoder's "
            "total gradient variance over `mc`'s at the end of training (geometric mean over seeds, each "
            "at the final parameters of that seed's `mc` run, × or ÷ the 95% t-interval factor):", "",
            markdown_table(["Nz", "test ELBO stl − mc", "stl ahead", "variance stl / mc", "variance analytic / mc"],
                           rows, code=()), ""]


def _final_ratio(run: Dict[str, Any], estimator: str) -> float:
    """The encoder's gradient-variance ratio ``estimator / mc`` at the run's last probe."""
    last = max(run["gradients"], key=int)
    return run["gradients"][last]["ratios_to_mc"][estimator]["encoder"]["ratio"]


def _geometric(ratios: List[float]) -> str:
    stat = mean_ci([math.log(r) for r in ratios])
    spread = "" if stat["ci95"] is None else f" ×/÷ {math.exp(stat['ci95']):.3g}"
    return f"{math.exp(stat['mean']):.3g}{spread}"


def _interval(stat: Dict[str, Any]) -> str:
    return f"{stat['mean']:+.2f}" + ("" if stat["ci95"] is None else f" ± {stat['ci95']:.2f}")


def _verdict(stat: Dict[str, Any]) -> str:
    """``yes`` when the interval lies above 0, ``no`` below it, ``not resolved`` across it."""
    if stat["ci95"] is None:
        return "n/a (one seed)"
    low, high = stat["mean"] - stat["ci95"], stat["mean"] + stat["ci95"]
    return "yes" if low > 0 else "no" if high < 0 else "not resolved (interval spans 0)"


def _overfit(run: Dict[str, Any]) -> float:
    last = run["curve"][-1]
    return last["train_elbo"] - last["test_elbo"]


def main(argv: List[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--estimators", default="mc,analytic,stl")
    p.add_argument("--latent-dims", default="3,5,10,20,200")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--samples", type=count, default=3_000_000, help="training samples per run")
    p.add_argument("--setup", default="paper", help="paper, or modern (ReLU 400, Adam)")
    p.add_argument("--ll-samples", type=int, default=5000, help="importance samples K of the final log p(x)")
    p.add_argument("--ll-rows", type=int, default=1000, help="test rows of the final log p(x) (the first ones)")
    p.add_argument("--grad-repeats", type=int, default=50)
    p.add_argument("--curve-points", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--batched", choices=["auto", "on", "off"], default="auto",
                   help="train each latent size's runs as one batched model (auto: on CUDA)")
    p.add_argument("--out", default="benchmarks/results/figure2-fashion-mnist")
    p.add_argument("--resume", action="store_true", help="continue an interrupted grid in --out")
    p.add_argument("--shard", type=shard_spec, default=None, metavar="I/N",
                   help="train only shard I of N (runs I, I+N, ... of the grid) into the shared --out; "
                        "once every shard has finished, run again without --shard (and with --resume) for the report")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, about a minute on a CPU")
    args = p.parse_args(argv)
    sizes = dict(latent_dims=[int(z) for z in args.latent_dims.split(",")], seeds=args.seeds, samples=args.samples,
                 ll_samples=args.ll_samples, ll_rows=args.ll_rows, grad_repeats=args.grad_repeats,
                 curve_points=args.curve_points, batched={"auto": None, "on": True, "off": False}[args.batched])
    data = load_dataset(args.dataset, binarize="dynamic", data_dir=args.data_dir, seed=0)
    if args.smoke:
        sizes = dict(SMOKE)
        rows = sizes.pop("rows")
        data.train, data.test = data.train[:rows], data.test[:rows // 3]
    result = compare(data, args.estimators.split(","), setup=args.setup, device=args.device, out=args.out,
                     resume=args.resume, shard=args.shard, **sizes)
    if args.shard is not None:
        print(f"shard {args.shard[0]}/{args.shard[1]} finished; the report comes from a run without --shard "
              "once every shard has")
        return
    write_report(result, args.out)
    report = Path(args.out) / "report.md"
    report.write_text(report.read_text() + "\n" + claims(result))
    command = ["python", "benchmarks/figure2.py", *(sys.argv[1:] if argv is None else argv)]
    (Path(args.out) / "command.json").write_text(json.dumps({"command": command}) + "\n")  # how to reproduce it
    print(f"report: {report}")


if __name__ == "__main__":
    main()

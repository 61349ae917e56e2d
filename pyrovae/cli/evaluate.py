"""``pyrovae evaluate``: test ELBOs, a log p(x) estimate (``--method``) and optionally the inference
gaps (``--gaps``) of a run, into summary.json."""

from __future__ import annotations

import argparse
import math
import warnings

import torch

from ..errors import PyroVAEWarning
from ..evaluate import log_likelihood, sampling_plan
from ..gaps import inference_gaps
from ..run_report import write_run_report
from ..runs import load_run
from ..training import final_elbos, resolve_device
from ..validation import check_positive
from .common import device_flag


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The run folder, the estimate and its settings."""
    p.add_argument("run", help="run folder written by pyrovae train")
    p.add_argument("--method", default="is", help="how log p(x) is estimated: is (importance sampling from the "
                                                  "encoder) or ais (annealed importance sampling) (default is)")
    p.add_argument("--samples", type=int, default=None,
                   help="importance samples K per point for is (default 5000), chains per point for ais (default 16)")
    p.add_argument("--ais-steps", type=int, default=None, help="annealing steps T of ais (default 1000)")
    p.add_argument("--gaps", action="store_true", help="also the approximation and amortization gaps "
                                                      "(Cremer et al. 2018) on --gap-points test points spread over the "
                                                      "test set")
    p.add_argument("--gap-points", type=int, default=100, help="test points for --gaps (default 100)")
    device_flag(p, "evaluate")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Evaluate, write summary.json and report.md, print the numbers (rank 0 in a data-parallel run)."""
    check_positive(**{flag: value for flag, value in (("--samples", args.samples), ("--ais-steps", args.ais_steps),
                                                      ("--gap-points", args.gap_points)) if value is not None})
    spec, plan = sampling_plan(args.method, args.samples, ais_steps=args.ais_steps, diagnostics=True)
    vae, config, data, folder = load_run(args.run, device=str(resolve_device(args.device)))
    ranks = args.ranks  # under torchrun every rank reads the run and evaluates its shard
    elbos = final_elbos(vae, data.test, config.seed, labels=data.test_labels, ranks=ranks)
    main = ranks is None or ranks.main
    ll, diag = log_likelihood(vae, data.test, num_samples=plan.num_samples, seed=config.seed,
                              progress=main and not args.no_progress, labels=data.test_labels, ranks=ranks,
                              return_diagnostics=True, method=args.method, annealing=plan.annealing)
    if not main:
        return 0  # the gaps are computed by rank 0 alone
    estimate = {"nats": ll, "method": args.method, "num_samples": plan.num_samples, **spec.settings(plan),
                "diagnostics": diag.to_dict()}
    gaps = _gaps(args, vae, data, config.seed, plan) if args.gaps else None
    folder.update_summary(test_elbo=elbos, **{spec.summary_key: estimate},
                          **({} if gaps is None else {"inference_gaps": gaps.to_dict()}))
    for name, value in elbos.items():
        print(f"test ELBO ({name}): {value:.3f} nats/point")
    khat = ("k-hat undefined (too few samples for a tail)" if math.isnan(diag.frac_khat_high)
            else f"k-hat > 0.7 for {100 * diag.frac_khat_high:.1f}% of points")
    print(f"test log p(x) ({spec.label(plan)}): {ll:.3f} ± {diag.log_px_se:.3f} (s.e. over points) nats/point; "
          f"median ESS {diag.median_ess:.1f}, {khat}")
    if gaps is not None:
        print(_gaps_text(gaps))
    if diag.warning():
        warnings.warn(diag.warning(), PyroVAEWarning)
    write_run_report(folder.path)
    return 0


def _gaps(args: argparse.Namespace, vae, data, seed: int, plan):
    """The inference gaps (Cremer et al. 2018) on ``--gap-points`` test points spread evenly over the test set.

    Evenly spread, not the first ones: a test set may be sorted (mnist-5k's is, by digit).
    """
    rows = torch.linspace(0, len(data.test) - 1, min(args.gap_points, len(data.test))).round().long()
    labels = None if data.test_labels is None else data.test_labels[rows]
    return inference_gaps(vae, data.test[rows], method=args.method, num_samples=plan.num_samples,
                          annealing=plan.annealing, seed=seed, labels=labels, progress=not args.no_progress)


def _gaps_text(gaps) -> str:
    """The gaps as ``pyrovae evaluate --gaps`` prints them."""
    return (f"inference gaps on {gaps.num_points} test points (log p(x) by {gaps.method}): "
            f"approximation {gaps.approximation_gap:.3f} ± {gaps.approximation_gap_se:.3f}, "
            f"amortization {gaps.amortization_gap:.3f} ± {gaps.amortization_gap_se:.3f} nats/point "
            f"(ELBO of the encoder {gaps.elbo_encoder:.3f}, of per-point fits {gaps.elbo_optimized:.3f}, "
            f"log p(x) {gaps.log_px:.3f})")

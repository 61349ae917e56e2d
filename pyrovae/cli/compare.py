"""``pyrovae compare``: train each estimator on the same grid and write the comparison report."""

from __future__ import annotations

import argparse
import time

from ..compare import SETUPS, compare
from ..config import RunConfig
from ..data import load_dataset
from ..estimators import ESTIMATORS
from ..errors import PyroVAEError
from ..options import count, help_of
from ..progress import progress_bar
from ..runs import RunFolder
from ..training import resolve_device
from ..validation import check_positive
from .common import device_flag, positive_ints, registered_names


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The grid (estimators x latent sizes x seeds), the data, the training and the measurements."""
    a = p.add_argument
    a("--estimators", type=registered_names(ESTIMATORS), default=["mc", "analytic"],
      help="comma-separated estimator names; the first is the reference (default mc,analytic)")
    a("--latent-dims", type=positive_ints, default=[3, 5, 10, 20],
      help="comma-separated latent sizes Nz, one cell each (default 3,5,10,20)")
    a("--dataset", default="mnist-5k", help=f"{help_of(RunConfig, 'dataset')} (default mnist-5k)")
    a("--data-dir", default=None, help=f"{help_of(RunConfig, 'data_dir')} (default none)")
    a("--binarize", default="dynamic", help="dynamic, static or none (default dynamic; every setup has a "
                                            "Bernoulli likelihood)")
    a("--seeds", type=int, default=3, help="seeds per cell (default 3)")
    a("--epochs", type=int, default=10, help=f"{help_of(RunConfig, 'epochs')} (default 10)")
    a("--samples", type=count, default=None, metavar="S",
      help="training samples per run, e.g. 3e6; replaces --epochs as the budget (default: the epochs decide)")
    a("--curve-points", type=int, default=12, metavar="P",
      help="log-spaced points of samples seen with train and test ELBO (default 12)")
    a("--grad-points", type=int, default=3, metavar="G",
      help="of those points, how many also probe the gradient variance, besides the initial weights (default 3)")
    a("--particles", type=int, default=1, help=f"{help_of(RunConfig, 'num_particles')} (default 1)")
    a("--setup", default="modern",
      help="modern (ReLU 400, Adam 1e-3), paper (tanh 500, Adagrad) or iwae (tanh 200-200, Adam) (default modern)")
    a("--batch-size", type=int, default=100, help=f"{help_of(RunConfig, 'batch_size')} (default 100)")
    a("--lr", type=float, default=None, help="learning rate (default: the setup's)")
    a("--init", default=None, help="initialization of the linear layers: torch or paper, N(0, 0.01^2) (default: "
                                   "the setup's; paper for --setup paper)")
    device_flag(p, "train")
    a("--ll-samples", type=int, default=1000, help="importance samples K for log p(x) (default 1000)")
    a("--ll-rows", type=int, default=None, help="estimate log p(x) on the first N test rows (default: all)")
    a("--grad-repeats", type=int, default=50, help="gradient estimates per checkpoint (default 50)")
    a("--batched", choices=["auto", "on", "off"], default="auto",
      help="train each latent size's runs as one batched model; auto: on CUDA, where it is faster (default auto)")
    a("--out", default=None, help="report folder, which keeps every run as it goes (default runs/compare-<time>)")
    a("--resume", action="store_true", help="continue the interrupted comparison in --out: finished runs are kept, "
                                            "an interrupted one continues from its checkpoint")
    a("--shard", type=shard_spec, default=None, metavar="I/N",
      help="train only shard I of N (runs I, I+N, ... in the grid's order) into the --out folder the N shards "
           "share, with --resume; once all have finished, the same command without --shard writes the report")
    a("--no-progress", action="store_true", help="hide the progress bar")


def shard_spec(text: str) -> tuple:
    """``I/N`` as ``(I, N)``: shard I (from 0) of N."""
    try:
        i, n = (int(k) for k in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N, e.g. 0/2, got {text!r}") from None
    return i, n


def run(args: argparse.Namespace) -> int:
    """Train the grid; rank 0 writes the report and prints one line per cell."""
    from ..report import write_report  # matplotlib: imported only by the command that draws (0.5 s)

    check_positive(**{f"--{name.replace('_', '-')}": getattr(args, name)
                      for name in ("seeds", "epochs", "particles", "batch_size", "ll_samples", "grad_repeats",
                                   "curve_points", "grad_points")})
    if args.resume and args.out is None:
        raise PyroVAEError("--resume needs the --out folder of the comparison to continue")
    if args.shard is not None and args.out is None:
        raise PyroVAEError("--shard needs the --out folder that the shards share")
    out = args.out or f"runs/compare-{time.strftime('%Y%m%d-%H%M%S')}"
    if not args.resume:
        RunFolder(out).check_new()
    resolve_device(args.device)
    SETUPS.check(args.setup)
    data = load_dataset(args.dataset, binarize=args.binarize, data_dir=args.data_dir, seed=0)
    total = len(args.latent_dims) * args.seeds * len(args.estimators)
    if args.shard is not None:
        total = len(range(args.shard[0], total, max(1, args.shard[1])))
    with progress_bar(total, "compare", not args.no_progress, unit="run") as bar:
        result = compare(data, args.estimators, args.latent_dims, seeds=args.seeds, epochs=args.epochs,
                         samples=args.samples, particles=args.particles, setup=args.setup, init=args.init,
                         batch_size=args.batch_size, lr=args.lr, device=args.device, ll_samples=args.ll_samples,
                         ll_rows=args.ll_rows, grad_repeats=args.grad_repeats, curve_points=args.curve_points,
                         grad_points=args.grad_points, out=out, resume=args.resume,
                         batched={"auto": None, "on": True, "off": False}[args.batched],
                         on_run=lambda run: bar.update(1), ranks=args.ranks, shard=args.shard)
    if args.shard is not None:
        print(f"shard {args.shard[0]}/{args.shard[1]}: {len(result['runs'])} runs finished in {out}; the same "
              "command without --shard (and with --resume) writes the report once every shard has finished")
        return 0
    ranks = args.ranks
    if ranks is not None and not ranks.main:
        return 0  # every rank trained and evaluated its shard; rank 0 writes the report
    report = write_report(result, out)
    for cell in report["summary"].values():
        print(f"Nz={cell['z_dim']:<4} {cell['estimator']:<9} test ELBO {cell['test_elbo']['mean']:.2f} "
              f"log p(x) {cell['log_likelihood']['mean']:.2f}")
    print(f"report: {out}/report.md")
    return 0

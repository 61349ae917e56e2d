"""The ``pyrovae`` command line: ``train``, ``evaluate``, ``compare`` and ``families``.

Bad input never produces a traceback: every :class:`~pyrovae.errors.PyroVAEError`
(and every argument error) becomes one line on stderr and exit code 2, and it
is raised before anything is written, so no earlier work on disk is touched.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Optional, Sequence

import pyro
from tqdm.auto import tqdm

from .compare import SETUPS, compare
from .config import RESUMABLE_CHANGES, RunConfig
from .data import BINARIZATIONS, DATASETS, load_dataset
from .errors import PyroVAEError
from .estimators import ESTIMATORS
from .evaluate import log_likelihood
from .families import FAMILIES
from .likelihoods import LIKELIHOODS
from .runs import RunFolder, load_run
from .report import write_report
from .tables import families_table, kl_text_table, likelihoods_table, priors_table, text_table
from .train import final_elbos, fit, resolve_device
from .vae import vae_from_config

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _hidden(text: str) -> tuple:
    if text.strip().lower() in ("", "none"):
        return ()  # no hidden layer: linear encoder and decoder
    try:
        return tuple(int(h) for h in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    d = RunConfig()
    a = p.add_argument
    a("--dataset", help=f"{', '.join(DATASETS.names())}, or a .npz/.pt file (default {d.dataset})")
    a("--data-dir", help="folder holding idx files for mnist / fashion-mnist")
    a("--download", action="store_true", default=False, help="allow downloading mnist / fashion-mnist")
    a("--binarize", help=f"{'|'.join(BINARIZATIONS)} (default {d.binarize})")
    a("--latent-dim", type=int, help=f"latent dimensions Nz (default {d.latent_dim})")
    a("--hidden", type=_hidden, help="hidden layer sizes, comma-separated; 'none' for linear (default 400)")
    a("--activation", help=f"hidden activation (default {d.activation})")
    a("--posterior", help=f"posterior family: {', '.join(FAMILIES.names())} (default {d.posterior})")
    a("--prior", help="prior family (default: the posterior family's default prior)")
    a("--likelihood", help=f"{', '.join(LIKELIHOODS.names())} (default {d.likelihood})")
    a("--estimator", help=f"{', '.join(ESTIMATORS.names())} (default {d.estimator})")
    a("--particles", type=int, help=f"samples L per data point per step (default {d.particles})")
    a("--epochs", type=int, help=f"(default {d.epochs})")
    a("--batch-size", type=int, help=f"minibatch size M (default {d.batch_size})")
    a("--lr", type=float, help=f"learning rate (default {d.lr})")
    a("--optimizer", help=f"adam or adagrad (default {d.optimizer})")
    a("--device", help=f"auto, cpu, cuda or cuda:N (default {d.device})")
    a("--seed", type=int, help=f"(default {d.seed})")
    a("--out", default=None, help="run folder (default runs/<time>-<dataset>-<estimator>)")
    a("--resume", action="store_true", default=False, help="continue the run in --out from its checkpoint")
    a("--no-progress", action="store_true", default=False, help="hide the progress bar")


def _given_config(args: argparse.Namespace) -> dict:
    """Config fields the user actually passed (flags default to None)."""
    names = {f.name for f in dataclasses.fields(RunConfig)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def _train_config(args: argparse.Namespace, given: dict) -> RunConfig:
    if not args.resume:
        RunFolder(args.out).check_new()
        return RunConfig(**given)
    folder = RunFolder(args.out).require()
    stored = RunConfig.from_dict(folder.read_config())
    if stored.dataset is None:
        raise PyroVAEError(f"run {folder.path} was trained from Python on in-memory data; resume it with fit(resume=True)")
    clash = stored.conflicts(given)
    if clash:
        what = ", ".join(f"--{k.replace('_', '-')} {new!r} (run has {old!r})" for k, (old, new) in clash.items())
        raise PyroVAEError(f"--resume: the command line disagrees with {folder.config}: {what}")
    return dataclasses.replace(stored, **{k: given[k] for k in RESUMABLE_CHANGES if k in given})


def cmd_train(args: argparse.Namespace) -> int:
    """``pyrovae train``: train a VAE and write a run folder."""
    given = _given_config(args)
    if args.out is None:
        if args.resume:
            raise PyroVAEError("--resume needs --out RUN_FOLDER")
        args.out = f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{given.get('dataset', 'mnist-5k')}-" \
                   f"{given.get('estimator', 'analytic')}"
    config = _train_config(args, given)
    resolve_device(config.device)
    data = load_dataset(config.dataset, binarize=config.binarize, data_dir=config.data_dir,
                        download=args.download, seed=config.seed)
    config = dataclasses.replace(config, binarize=data.binarize)  # e.g. synthetic data is never binarized
    pyro.set_rng_seed(config.seed)  # the initial weights belong to the seed too
    vae = vae_from_config(config, data.x_dim)
    config = dataclasses.replace(config, prior=vae.names["prior"])  # record the prior actually used
    result = fit(vae, data.train, test=data.test, estimator=config.estimator, num_particles=config.particles,
                 epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, optimizer=config.optimizer,
                 device=config.device, seed=config.seed, dynamic_binarization=data.dynamic, out=args.out,
                 resume=args.resume, config=config, progress=not args.no_progress)
    _print_result(args.out, result.metrics[-1] if result.metrics else {}, result.summary)
    return 0


def _print_result(out: str, last: dict, summary: dict) -> None:
    print(f"run folder: {out}")
    for key in ("epoch", "train_elbo", "test_elbo", "test_recon", "test_kl", "seconds"):
        if key in last:
            value = last[key]
            print(f"  {key:<11} {value:.3f}" if isinstance(value, float) else f"  {key:<11} {value}")
    for name, value in summary.get("test_elbo", {}).items():
        print(f"  test ELBO ({name}): {value:.3f} nats/point")
    for site, route in summary.get("kl_routes", {}).items():
        print(f"  KL at site {site!r}: {route}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``pyrovae evaluate``: test ELBOs and importance-sampled log p(x) of a run, into summary.json."""
    if args.samples < 1:
        raise PyroVAEError(f"--samples must be a positive integer, got {args.samples}")
    vae, config, data, folder = load_run(args.run, device=str(resolve_device(args.device)))
    elbos = final_elbos(vae, data.test, config.seed)
    ll = log_likelihood(vae, data.test, num_samples=args.samples, seed=config.seed, progress=not args.no_progress)
    folder.update_summary(test_elbo=elbos, log_likelihood={"nats": ll, "num_samples": args.samples})
    for name, value in elbos.items():
        print(f"test ELBO ({name}): {value:.3f} nats/point")
    print(f"test log p(x) (K={args.samples}): {ll:.3f} nats/point")
    return 0


def cmd_families(args: argparse.Namespace) -> int:
    """``pyrovae families``: the registered families and likelihoods, or the closed-form KL table."""
    print(families_text(kl=args.kl_table))
    return 0


def families_text(kl: bool = False) -> str:
    """What ``pyrovae families`` prints (``kl``: what ``--kl-table`` prints)."""
    if kl:
        return kl_text_table()
    return "\n\n".join(text_table(*table()) for table in (families_table, priors_table, likelihoods_table))


def _names(registry):
    """An argparse type: a comma-separated list of names registered in ``registry``."""
    def parse(text: str) -> list:
        try:
            return [registry.check(name.strip()) for name in text.split(",")]
        except PyroVAEError as e:  # argparse would hide a plain ValueError's message
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


def _positive_ints(text: str) -> list:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return values


def cmd_compare(args: argparse.Namespace) -> int:
    """``pyrovae compare``: train each estimator on the same grid and write the comparison report."""
    for name in ("seeds", "epochs", "particles", "batch_size", "ll_samples", "grad_repeats"):
        if getattr(args, name) < 1:
            raise PyroVAEError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    out = args.out or f"runs/compare-{time.strftime('%Y%m%d-%H%M%S')}"
    RunFolder(out).check_new()
    resolve_device(args.device)
    SETUPS.check(args.setup)
    data = load_dataset(args.dataset, binarize=args.binarize, data_dir=args.data_dir, seed=0)
    total = len(args.latent_dims) * args.seeds * len(args.estimators)
    with tqdm(total=total, desc="compare", unit="run", disable=args.no_progress) as bar:
        result = compare(data, args.estimators, args.latent_dims, seeds=args.seeds, epochs=args.epochs,
                         particles=args.particles, setup=args.setup, batch_size=args.batch_size, lr=args.lr,
                         device=args.device, ll_samples=args.ll_samples, grad_repeats=args.grad_repeats,
                         on_run=lambda run: bar.update(1))
    report = write_report(result, out)
    for cell in report["summary"].values():
        print(f"Nz={cell['z_dim']:<4} {cell['estimator']:<9} test ELBO {cell['test_elbo']['mean']:.2f} "
              f"log p(x) {cell['log_likelihood']['mean']:.2f}")
    print(f"report: {out}/report.md")
    return 0


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="compare estimators side by side",
                       description="Train each estimator on the same architecture, seeds and data order; "
                                   "write report.json, report.md and figures.")
    p.add_argument("--estimators", type=_names(ESTIMATORS), default=["mc", "analytic"],
                   help="comma-separated estimator names; the first is the reference (default mc,analytic)")
    p.add_argument("--latent-dims", type=_positive_ints, default=[3, 5, 10, 20], help="(default 3,5,10,20)")
    p.add_argument("--dataset", default="mnist-5k")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--binarize", default="dynamic")
    p.add_argument("--seeds", type=int, default=3, help="seeds per cell (default 3)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--particles", type=int, default=1, help="L (K for iwae and dreg), default 1")
    p.add_argument("--setup", default="modern", help="modern (ReLU 400, Adam 1e-3) or paper (tanh 500, Adagrad)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=None, help="default: the setup's")
    p.add_argument("--device", default="auto")
    p.add_argument("--ll-samples", type=int, default=1000, help="importance samples K for log p(x) (default 1000)")
    p.add_argument("--grad-repeats", type=int, default=50, help="gradient estimates per checkpoint (default 50)")
    p.add_argument("--out", default=None, help="report folder (default runs/compare-<time>)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_compare)


def build_parser() -> argparse.ArgumentParser:
    """The ``pyrovae`` argument parser with its subcommands."""
    parser = _Parser(prog="pyrovae", description="Auto-Encoding Variational Bayes in Pyro.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = sub.add_parser("train", help="train a VAE", description="Train a VAE with SVI and write a run folder.")
    _add_train_flags(train)
    train.set_defaults(func=cmd_train)
    ev = sub.add_parser("evaluate", help="evaluate a run", description="Test ELBO and importance-sampled log p(x).")
    ev.add_argument("run", help="run folder written by pyrovae train")
    ev.add_argument("--samples", type=int, default=5000, help="importance samples K per point (default 5000)")
    ev.add_argument("--device", default="cpu", help="device to evaluate on (default cpu)")
    ev.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    ev.set_defaults(func=cmd_evaluate)
    _add_compare(sub)
    fam = sub.add_parser("families", help="list distribution families",
                         description="List posterior/prior families and likelihoods.")
    fam.add_argument("--kl-table", action="store_true", help="print which (posterior, prior) pairs have a closed-form KL")
    fam.set_defaults(func=cmd_families)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``pyrovae`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PyroVAEError as e:
        message = " ".join(str(e).split())
        print(f"pyrovae {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"pyrovae {args.command}: interrupted; every finished epoch is saved in the run folder", file=sys.stderr)
        return 130

"""The ``pyrovae`` command line: ``train``, ``evaluate``, ``compare``, ``plot`` and ``families``.

Bad input never produces a traceback: every :class:`~pyrovae.errors.PyroVAEError`
(and every argument error) becomes one line on stderr and exit code 2, and it
is raised before anything is written, so no earlier work on disk is touched.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
import warnings
from typing import Optional, Sequence

import pyro
from tqdm.auto import tqdm

from . import distributed
from .compare import SETUPS, compare
from .conditional import CONDITIONINGS, count_classes
from .config import RunConfig
from .data import BINARIZATIONS, DATASETS, load_dataset
from .diagnostics import class_mean_accuracy
from .errors import PyroVAEError, PyroVAEWarning
from .estimators import ESTIMATORS
from .evaluate import log_likelihood
from .fastpath import STEPS
from .families import FAMILIES
from .likelihoods import LIKELIHOODS
from .plots import PLOTS, write_figures
from .run_report import write_run_report
from .runs import RunFolder, load_run
from .tables import families_table, kl_text_table, likelihoods_table, priors_table, text_table
from .tblog import TensorBoardLogger, require_tensorboard
from .train import OPTIMIZERS, final_elbos, fit, resolve_device
from .validation import check_positive
from .vae import vae_from_config

EXIT_BAD_INPUT = 2
#: Commands that run data-parallel when launched by torchrun (every rank runs the command).
DATA_PARALLEL = ("train", "evaluate", "compare")


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
    a("--step", help=f"auto, {', '.join(STEPS.names())}: how a training step runs (default {d.step}; "
                     "eager re-runs the model's Python every step)")
    a("--clip-grad-norm", type=float, metavar="MAX", help="clip the total gradient norm to MAX (default: no clipping)")
    a("--checkpoint-every", type=int, metavar="N",
      help="also checkpoint every N steps (default: at the end of every epoch only)")
    a("--out", default=None, help="run folder (default runs/<time>-<dataset>-<estimator>)")
    a("--conditional", help=f"{'|'.join(CONDITIONINGS.names())}: class-conditional VAE on labelled data; "
                            f"prior = N(mu_y, I) (Su 2018, eq. 8), full = label into encoder and decoder "
                            f"(default {d.conditional})")
    a("--beta", type=float, help=f"KL weight of the training loss recon + beta * KL (default {d.beta:g})")
    a("--kl-warmup-epochs", type=int, help="raise the KL weight linearly from 0 to beta over this many epochs "
                                           f"(default {d.kl_warmup_epochs})")
    a("--tensorboard", action="store_true", default=None, help="log scalars and image grids to RUN/tensorboard "
                                                               "(needs the tensorboard package)")
    a("--resume", action="store_true", default=False, help="continue the run in --out from its checkpoint")
    a("--no-figures", action="store_true", default=False, help="do not write figures at the end (report.md is "
                                                               "still written)")
    a("--no-progress", action="store_true", default=False, help="hide the progress bar")


def _given_config(args: argparse.Namespace) -> dict:
    """Config fields the user actually passed (flags default to None)."""
    names = {f.name for f in dataclasses.fields(RunConfig)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def _train_config(args: argparse.Namespace, given: dict) -> RunConfig:
    folder = RunFolder(args.out)
    if not args.resume:
        folder.check_new()
        return RunConfig(**given)
    folder.check_free()
    stored = RunConfig.from_dict(folder.require(checkpoint=False).read_config())
    if stored.dataset is None:
        raise PyroVAEError(f"run {folder.path} was trained from Python on in-memory data; resume it with fit(resume=True)")
    return stored.resumed_with(given, str(folder.config))


def cmd_train(args: argparse.Namespace) -> int:
    """``pyrovae train``: train a VAE and write a run folder."""
    given = _given_config(args)
    if args.out is None:
        if args.resume:
            raise PyroVAEError("--resume needs --out RUN_FOLDER")
        args.out = f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{given.get('dataset', 'mnist-5k')}-" \
                   f"{given.get('estimator', 'analytic')}"
    ranks = args.ranks
    # Rank 0 alone looks at the run folder (other ranks would race with what it writes).
    config = _train_config(args, given) if ranks is None else \
        ranks.from_main(lambda: _train_config(args, given), "the run-folder checks")
    _check_names(config)
    CONDITIONINGS.check(config.conditional)
    if config.tensorboard:
        require_tensorboard()  # before any work: a missing package is bad input too
    data = load_dataset(config.dataset, binarize=config.binarize, data_dir=config.data_dir,
                        download=args.download, seed=config.seed)
    config = dataclasses.replace(config, binarize=data.binarize)  # e.g. synthetic data is never binarized
    if CONDITIONINGS[config.conditional].needs_labels and config.num_classes is None:
        config = dataclasses.replace(config, num_classes=count_classes(data.train_labels))
    pyro.set_rng_seed(config.seed)  # the initial weights belong to the seed too
    vae = vae_from_config(config, data.x_dim)
    config = dataclasses.replace(config, prior=vae.names["prior"])  # record the prior actually used
    main = ranks is None or ranks.main
    callback = (TensorBoardLogger(args.out, data.test, data.test_labels, data.image_shape, config.seed)
                if config.tensorboard and main else None)
    result = fit(vae, data.train, test=data.test, estimator=config.estimator, num_particles=config.particles,
                 epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, optimizer=config.optimizer,
                 device=config.device, seed=config.seed, dynamic_binarization=data.dynamic, out=args.out,
                 resume=args.resume, config=config, progress=not args.no_progress, callback=callback,
                 train_labels=data.train_labels, test_labels=data.test_labels, beta=config.beta,
                 kl_warmup_epochs=config.kl_warmup_epochs, step=config.step,
                 clip_grad_norm=config.clip_grad_norm, checkpoint_every=config.checkpoint_every, ranks=ranks)
    if callback is not None:
        callback.close()
    if not main:
        return 0  # rank 0 prints, draws and reports
    summary = _conditional_summary(args.out, vae, data, result.summary)
    _print_result(args.out, result.metrics[-1] if result.metrics else {}, summary)
    _write_figures_and_report(args.out, None if args.no_figures else ())
    return 0


def _conditional_summary(out: str, vae, data, summary: dict) -> dict:
    """For the class-mean prior: add the nearest-class-mean test accuracy.

    The prior is ``N(mu_y, I)`` with a learned mean per class, eq. 8 of Su Jianlin,
    "Variational autoencoders (1)", 2018.
    """
    if not vae.conditioning.class_prior:
        return summary
    accuracy = class_mean_accuracy(vae, data.test, data.test_labels)
    return RunFolder(out).update_summary(class_mean_accuracy=accuracy)


def _write_figures_and_report(run: str, kinds, device: str = "cpu") -> None:
    """Figures (``kinds``: None for none, ``()`` for every one that applies), then ``report.md``."""
    if kinds is not None:
        for kind, path in write_figures(run, list(kinds) or None, device=device).items():
            print(f"  figure {kind:<9} {path}")
    print(f"report: {write_run_report(run)}")


def _check_names(config: RunConfig) -> None:
    """Names, sizes and the posterior/prior pair, before the data are loaded: a typo should not wait."""
    resolve_device(config.device)
    ESTIMATORS.check(config.estimator)
    OPTIMIZERS.check(config.optimizer)
    # Builds nothing big; raises what the real VAE would. The class count comes from the data later.
    vae_from_config(dataclasses.replace(config, num_classes=config.num_classes or 2), x_dim=1)


def _print_result(out: str, last: dict, summary: dict) -> None:
    print(f"run folder: {out}")
    for key in ("epoch", "train_elbo", "test_elbo", "test_recon", "test_kl", "seconds"):
        if key in last:
            value = last[key]
            print(f"  {key:<11} {value:.3f}" if isinstance(value, float) else f"  {key:<11} {value}")
    for name, value in summary.get("test_elbo", {}).items():
        print(f"  test ELBO ({name}): {value:.3f} nats/point")
    if "class_mean_accuracy" in summary:
        print(f"  nearest class mean accuracy (test): {summary['class_mean_accuracy']:.3f}")
    for site, route in summary.get("kl_routes", {}).items():
        print(f"  KL at site {site!r}: {route}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``pyrovae evaluate``: test ELBOs and importance-sampled log p(x) of a run, into summary.json."""
    check_positive(**{"--samples": args.samples})
    vae, config, data, folder = load_run(args.run, device=str(resolve_device(args.device)))
    ranks = args.ranks  # under torchrun every rank reads the run and evaluates its shard
    elbos = final_elbos(vae, data.test, config.seed, labels=data.test_labels, ranks=ranks)
    main = ranks is None or ranks.main
    ll, diag = log_likelihood(vae, data.test, num_samples=args.samples, seed=config.seed,
                              progress=main and not args.no_progress, labels=data.test_labels, ranks=ranks,
                              return_diagnostics=True)
    if not main:
        return 0
    folder.update_summary(test_elbo=elbos, log_likelihood={"nats": ll, "num_samples": args.samples,
                                                           "diagnostics": diag.to_dict()})
    for name, value in elbos.items():
        print(f"test ELBO ({name}): {value:.3f} nats/point")
    khat = ("k-hat undefined (too few samples for a tail)" if math.isnan(diag.frac_khat_high)
            else f"k-hat > 0.7 for {100 * diag.frac_khat_high:.1f}% of points")
    print(f"test log p(x) (K={args.samples}): {ll:.3f} ± {diag.log_px_se:.3f} (s.e. over points) nats/point; "
          f"median ESS {diag.median_ess:.1f}, {khat}")
    if diag.warning():
        warnings.warn(diag.warning(), PyroVAEWarning)
    write_run_report(folder.path)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    """``pyrovae plot``: write figures of a run into its folder and refresh its report.md."""
    _write_figures_and_report(args.run, args.kind or (), device=str(resolve_device(args.device)))
    return 0


def _add_plot(sub) -> None:
    kinds = "\n".join(f"  {name:<9} {spec.description}" for name, spec in PLOTS.items())
    p = sub.add_parser("plot", help="draw figures of a run", formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Write figures of a run into its folder as <kind>.png and refresh report.md.\n"
                                   f"Kinds:\n{kinds}")
    p.add_argument("run", help="run folder written by pyrovae train")
    p.add_argument("--kind", type=_names(PLOTS), default=None,
                   help="comma-separated kinds (default: every kind that applies to the run; manifold needs Nz = 2)")
    p.add_argument("--device", default="cpu", help="device to draw on (default cpu)")
    p.set_defaults(func=cmd_plot)


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
    from .report import write_report  # matplotlib: imported only by the command that draws (0.5 s)

    check_positive(**{f"--{name.replace('_', '-')}": getattr(args, name)
                      for name in ("seeds", "epochs", "particles", "batch_size", "ll_samples", "grad_repeats")})
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
                         on_run=lambda run: bar.update(1), ranks=args.ranks)
    ranks = args.ranks
    if ranks is not None and not ranks.main:
        return 0  # every rank trained and evaluated its shard; rank 0 writes the report
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
    _add_plot(sub)
    fam = sub.add_parser("families", help="list distribution families",
                         description="List posterior/prior families and likelihoods.")
    fam.add_argument("--kl-table", action="store_true", help="print which (posterior, prior) pairs have a closed-form KL")
    fam.set_defaults(func=cmd_families)
    return parser


def _one_line_warnings(command: str):
    """A ``warnings.showwarning`` that prints pyrovae's own warnings as one line, like its errors."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, PyroVAEWarning):
            print(f"pyrovae {command}: warning: {' '.join(str(message).split())}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)
    return show


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``pyrovae`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    clean = False
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warnings(args.command)
        try:
            # The data-parallel context, passed on explicitly (None in one process).
            args.ranks = distributed.init_from_env(getattr(args, "device", None) or "auto") \
                if args.command in DATA_PARALLEL else None
            code = args.func(args)
            clean = True
            return code
        except PyroVAEError as e:
            message = " ".join(str(e).split())
            print(f"pyrovae {args.command}: error: {_rank_prefix(getattr(args, 'ranks', None))}{message}",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        except distributed.DistributedError as e:
            # The first line: Pyro appends the trace's shapes to errors raised inside a model.
            print(f"pyrovae {args.command}: error: {str(e).splitlines()[0]}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"pyrovae {args.command}: interrupted; the last checkpoint is kept in the run folder "
                  "(resume with --resume)", file=sys.stderr)
            return 130
        finally:
            distributed.shutdown(clean)


def _rank_prefix(ranks: Optional[distributed.Ranks]) -> str:
    """``"rank R: "`` on the ranks after the first of a data-parallel run (each prints its own error)."""
    return "" if ranks is None or ranks.main else f"rank {ranks.rank}: "

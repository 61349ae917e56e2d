"""``pyrovae train``: parse the flags, build the VAE, :func:`~pyrovae.fit` it, print the result."""

from __future__ import annotations

import argparse
import dataclasses
import time

import pyro

from ..architectures import ARCHITECTURES
from ..conditional import CONDITIONINGS, count_classes
from ..config import RunConfig
from ..data import load_dataset
from ..errors import PyroVAEError
from ..options import add_flags, given_options
from ..runs import RunFolder
from ..tblog import require_tensorboard
from ..training import fit, resolve_device
from ..vae import vae_from_config
from .common import print_files


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of every :class:`~pyrovae.config.RunConfig` option, then the command's own."""
    add_flags(p, RunConfig)
    a = p.add_argument
    a("--download", action="store_true", default=False, help="allow downloading mnist / fashion-mnist")
    a("--out", default=None, help="run folder (default runs/<time>-<dataset>-<estimator>)")
    a("--resume", action="store_true", default=False, help="continue the run in --out from its checkpoint "
                                                           "(a folder with no run yet starts one)")
    a("--no-figures", action="store_true", default=False, help="do not write figures at the end (report.md is "
                                                               "still written)")
    a("--no-progress", action="store_true", default=False, help="hide the progress output")


def run(args: argparse.Namespace) -> int:
    """Train and print; rank 0 alone prints in a data-parallel run."""
    given = given_options(args, RunConfig)
    if args.out is None:
        if args.resume:
            raise PyroVAEError("--resume needs --out RUN_FOLDER")
        args.out = f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{given.get('dataset', 'mnist-5k')}-" \
                   f"{given.get('estimator', RunConfig.estimator)}"
    ranks = args.ranks
    # Rank 0 alone looks at the run folder (other ranks would race with what it writes).
    config = _config(args, given) if ranks is None else \
        ranks.from_main(lambda: _config(args, given), "the run-folder checks")
    _check_names(config)
    data = load_dataset(config.dataset, binarize=config.binarize, data_dir=config.data_dir,
                        download=args.download, seed=config.seed)
    config = dataclasses.replace(config, binarize=data.binarize)  # e.g. synthetic data is never binarized
    if CONDITIONINGS[config.conditional].needs_labels and config.num_classes is None:
        config = dataclasses.replace(config, num_classes=count_classes(data.train_labels))
    pyro.set_rng_seed(config.seed)  # the initial weights belong to the seed too
    vae = vae_from_config(config, data.x_dim, data.image_shape)
    result = fit(vae, data, out=args.out, resume=args.resume, config=config, progress=not args.no_progress,
                 ranks=ranks, figures=not args.no_figures)
    if ranks is None or ranks.main:
        _print_result(args.out, result.metrics[-1] if result.metrics else {}, result.summary, result.files)
    return 0


def _config(args: argparse.Namespace, given: dict) -> RunConfig:
    """A fresh run's config from the flags, or the stored one with the flags a resume may change."""
    folder = RunFolder(args.out)
    if not args.resume or not folder.exists():  # --resume on a folder with no run yet starts one (fit says so)
        folder.check_new()
        return RunConfig(**given)
    folder.check_free()
    stored = RunConfig.from_dict(folder.require(checkpoint=False).read_config())
    if stored.dataset is None:
        raise PyroVAEError(f"run {folder.path} was trained from Python on in-memory data; resume it with fit(resume=True)")
    return stored.resumed_with(given, str(folder.config))


def _check_names(config: RunConfig) -> None:
    """Names, sizes and the posterior/prior pair, before the data are loaded: a typo should not wait."""
    resolve_device(config.device)
    CONDITIONINGS.check(config.conditional)
    if config.tensorboard:
        require_tensorboard()  # before any work: a missing package is bad input too
    # Builds nothing big; raises what the real VAE would. The class count and the image shape
    # (which --arch conv needs) come from the data later.
    ARCHITECTURES.check(config.arch)
    vae_from_config(dataclasses.replace(config, num_classes=config.num_classes or 2, arch="mlp"), x_dim=1)


def _print_result(out: str, last: dict, summary: dict, files: dict) -> None:
    print(f"run folder: {out}")
    for key in ("epoch", "train_elbo", "train_iwae", "test_elbo", "test_iwae", "test_recon", "test_kl", "seconds"):
        if key in last:
            value = last[key]
            print(f"  {key:<11} {value:.3f}" if isinstance(value, float) else f"  {key:<11} {value}")
    for name, value in summary.get("test_elbo", {}).items():
        print(f"  test ELBO ({name}): {value:.3f} nats/point")
    if "class_mean_accuracy" in summary:
        print(f"  nearest class mean accuracy (test): {summary['class_mean_accuracy']:.3f}")
    for site, route in summary.get("kl_routes", {}).items():
        print(f"  KL at site {site!r}: {route}")
    print_files(files)

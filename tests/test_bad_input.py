"""Bad input on the command line: one line on stderr, exit code 2, no traceback, nothing written.

One table covers every subcommand. Each case runs as its own process (see ``forkrunner``) in a
folder of prepared inputs: data files with NaN, infinities, values outside a likelihood's
support, wrong shapes and dtypes; run folders whose checkpoint is truncated, carries code,
belongs to another network, or that another process is training into. After every case the
whole folder must be byte for byte as it was: no partial run folder, nothing lost.
"""

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from forkrunner import ForkRunner
from pyrovae.cli import build_parser, main
from pyrovae.lock import RunLock

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "synthetic", "--likelihood", "normal", "--latent-dim", "2", "--hidden", "8",
        "--batch-size", "100", "--device", "cpu", "--no-progress"]

BAD = {
    # -- train: names --------------------------------------------------------------------------
    "unknown dataset": (["train", "--dataset", "mnist5k"], "did you mean 'mnist-5k'"),
    "unknown posterior": (["train", "--posterior", "gaussian"], "unknown posterior family 'gaussian'"),
    "unknown prior": (["train", "--prior", "lapalce"], "did you mean 'laplace'"),
    "unknown likelihood": (["train", "--likelihood", "bernouli"], "did you mean 'bernoulli'"),
    "unknown estimator": (["train", "--estimator", "analytc"], "did you mean 'analytic'"),
    "unknown optimizer": (["train", "--optimizer", "adamw"], "did you mean 'adam'"),
    "unknown binarization": (["train", "--binarize", "dynamc"], "did you mean 'dynamic'"),
    "unknown activation": (["train", "--activation", "rellu"], "did you mean 'relu'"),
    "unknown architecture": (["train", "--arch", "cnv"], "did you mean 'conv'"),
    "conv on data that are not images": (["train", "--dataset", "synthetic", "--arch", "conv"],
                                         "architecture 'conv' is for image data"),
    "vamp prior with a conditional encoder": (["train", "--prior", "vamp", "--conditional", "full"],
                                              "pseudo-inputs have no class labels"),
    "unknown device": (["train", "--device", "tpu"], "unknown device 'tpu'"),
    # -- train: sizes and numbers ----------------------------------------------------------------
    "zero latent": (["train", "--latent-dim", 0], "latent-dim must be a positive integer"),
    "negative hidden": (["train", "--hidden", "400,-3"], "hidden sizes must be positive"),
    "bad hidden text": (["train", "--hidden", "big"], "comma-separated integers"),
    "zero batch": (["train", "--batch-size", 0], "batch-size must be a positive integer"),
    "zero epochs": (["train", "--epochs", 0], "epochs must be a positive integer"),
    "zero particles": (["train", "--particles", 0], "particles must be a positive integer"),
    "negative lr": (["train", "--lr", -0.1], "lr must be positive"),
    "nan lr": (["train", "--lr", "nan"], "lr must be positive and finite"),
    "zero clip norm": (["train", "--clip-grad-norm", 0], "clip-grad-norm must be positive"),
    "zero checkpoint interval": (["train", "--checkpoint-every", 0], "checkpoint-every must be a positive integer"),
    # -- train: data -----------------------------------------------------------------------------
    "nan in file": (["train", "--dataset", "{tmp}/nan.npz", "--binarize", "none"], "NaN"),
    "inf in file": (["train", "--dataset", "{tmp}/inf.npz", "--binarize", "none"], "NaN or infinite"),
    "bernoulli outside [0,1]": (["train", "--dataset", "{tmp}/big.npz", "--binarize", "none"],
                                "outside the support of the 'bernoulli'"),
    "beta at 0 and 1": (["train", "--dataset", "{tmp}/binary.npz", "--binarize", "none", "--likelihood", "beta"],
                        "outside the support of the 'beta'"),
    "poisson non-integer": (["train", "--dataset", "{tmp}/grey.npz", "--binarize", "none", "--likelihood",
                             "poisson"], "outside the support of the 'poisson'"),
    "categorical level 300": (["train", "--dataset", "{tmp}/levels.npz", "--binarize", "none", "--likelihood",
                               "categorical"], "outside the support of the 'categorical'"),
    "empty data": (["train", "--dataset", "{tmp}/empty.npz", "--binarize", "none"], "has no rows"),
    "1-D data": (["train", "--dataset", "{tmp}/flat.npz", "--binarize", "none"], "must be 2-D"),
    "string data": (["train", "--dataset", "{tmp}/text.npz", "--binarize", "none"], "non-numeric dtype"),
    "misspelt array key": (["train", "--dataset", "{tmp}/key.npz"], "did you mean 'x'"),
    "wrong file type": (["train", "--dataset", "{tmp}/data.csv"], "must end in .npz or .pt"),
    "missing data file": (["train", "--dataset", "{tmp}/nope.npz"], "nope.npz"),
    "batch larger than data": (["train", "--dataset", "{tmp}/small.npz", "--binarize", "none"],
                               "larger than the 8 training points"),
    # -- train: model ----------------------------------------------------------------------------
    "no closed-form KL": (["train", "--posterior", "student-t", "--estimator", "analytic"],
                          "posterior StudentT with prior StandardNormal"),
    "support mismatch": (["train", "--posterior", "normal", "--prior", "gamma"],
                         "posterior 'normal' (support Real()^k) is not inside the support of prior 'gamma'"),
    "learnable prior has no closed-form KL": (["train", "--prior", "mog", "--estimator", "analytic"],
                                              "posterior Normal with prior NormalMixture"),
    "flow needs two latents": (["train", "--posterior", "iaf", "--latent-dim", 1], "at least 2 latent dimensions"),
    # -- train: run folders ----------------------------------------------------------------------
    "existing out folder": (["train", "--out", "{tmp}/exists"], "already exists"),
    "out is a file": (["train", "--out", "{tmp}/data.csv"], "is not a folder"),
    "resume without out": (["train", "--resume"], "--resume needs --out"),
    "resume a folder of other files": (["train", "--resume", "--out", "{tmp}/exists"], "already exists and is not empty"),
    "binarizing non-binary data": (["train", "--likelihood", "continuous-bernoulli", "--binarize", "dynamic"],
                                   "'continuous-bernoulli' likelihood is not a model of binary data"),
    "resume disagrees": (["train", "--resume", "--out", "{tmp}/ok", "--latent-dim", 7],
                         "--latent-dim 7 (run has 2)"),
    "resume truncated checkpoint": (["train", "--resume", "--out", "{tmp}/truncated"], "corrupted or truncated"),
    "resume code-carrying checkpoint": (["train", "--resume", "--out", "{tmp}/evil-pickle"], "was refused"),
    "resume another network": (["train", "--resume", "--out", "{tmp}/mismatch"], "does not match this run"),
    "train into a busy folder": (["train", "--out", "{tmp}/busy"], "is in use by pid {pid}"),
    "resume a busy folder": (["train", "--resume", "--out", "{tmp}/busy"], "is in use by pid {pid}"),
    # -- evaluate --------------------------------------------------------------------------------
    "evaluate missing run": (["evaluate", "{tmp}/ghost"], "not a pyrovae run folder"),
    "evaluate zero samples": (["evaluate", "{tmp}/ok", "--samples", 0], "--samples must be a positive"),
    "evaluate unknown device": (["evaluate", "{tmp}/ok", "--device", "gpu0"], "unknown device"),
    "evaluate no checkpoint": (["evaluate", "{tmp}/unsaved"], "no checkpoint.pt yet"),
    "evaluate truncated checkpoint": (["evaluate", "{tmp}/truncated"], "corrupted or truncated"),
    "evaluate code-carrying checkpoint": (["evaluate", "{tmp}/evil-zip"], "was refused"),
    "evaluate another network": (["evaluate", "{tmp}/mismatch"], "does not match the network"),
    "evaluate broken config": (["evaluate", "{tmp}/badconfig"], "not readable JSON"),
    # -- compare ---------------------------------------------------------------------------------
    "compare unknown estimator": (["compare", "--estimators", "mc,analitic"], "did you mean 'analytic'"),
    "compare unknown setup": (["compare", "--setup", "modrn"], "did you mean 'modern'"),
    "compare unknown dataset": (["compare", "--dataset", "fashion"], "did you mean 'fashion-mnist'"),
    "compare zero latent": (["compare", "--latent-dims", "0,2"], "sizes must be positive"),
    "compare zero seeds": (["compare", "--seeds", 0], "--seeds must be a positive integer"),
    "compare negative lr": (["compare", "--lr", -1, "--dataset", "{tmp}/grey.npz"], "lr must be positive"),
    "compare batch larger than data": (["compare", "--batch-size", 100, "--dataset", "{tmp}/small.npz"],
                                       "larger than the 8 training points"),
    "compare data outside support": (["compare", "--dataset", "{tmp}/big.npz", "--binarize", "none"],
                                     "outside the support of the 'bernoulli'"),
    "compare existing out": (["compare", "--out", "{tmp}/exists"], "already exists"),
    "evaluate unknown method": (["evaluate", "{tmp}/ok", "--method", "aiss"], "did you mean 'ais'"),
    # -- sample ----------------------------------------------------------------------------------
    "sample missing run": (["sample", "{tmp}/ghost"], "not a pyrovae run folder"),
    "sample zero draws": (["sample", "{tmp}/ok", "--n", 0], "--n must be a positive integer"),
    "sample unknown format": (["sample", "{tmp}/ok", "--out", "{tmp}/draws.jpg"], ".jpg"),
    # -- families and the command itself ---------------------------------------------------------
    "families unknown flag": (["families", "--kl-tabel"], "unrecognized arguments: --kl-tabel"),
    "families extra argument": (["families", "normal"], "unrecognized arguments: normal"),
    "unknown subcommand": (["trian"], "invalid choice: 'trian'"),
    "no subcommand": ([], "the following arguments are required"),
}


def _subcommands():
    return set(build_parser()._subparsers._group_actions[0].choices)


def _train_flags():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    return {flag for action in train._actions for flag in action.option_strings}


# Cases for features that land in another branch; they join the table once their subcommand or
# flag exists (generated, not skipped: until then they are simply not part of the run).
PLOT = {
    "plot missing run": (["plot", "{tmp}/ghost"], "not a pyrovae run folder"),
    "plot unknown kind": (["plot", "{tmp}/ok", "--kind", "recn"], "did you mean 'recon'"),
    "plot no checkpoint": (["plot", "{tmp}/unsaved"], "no checkpoint.pt yet"),
    "plot truncated checkpoint": (["plot", "{tmp}/truncated"], "corrupted or truncated"),
    "plot code-carrying checkpoint": (["plot", "{tmp}/evil-zip"], "was refused"),
}
CONDITIONAL = {
    "conditional without labels": (["train", "--conditional", "prior", "--dataset", "synthetic", "--likelihood",
                                    "normal"], "labels"),
    "conditional file without labels": (["train", "--conditional", "full", "--dataset", "{tmp}/grey.npz",
                                         "--binarize", "none"], "labels"),
    "unknown conditional mode": (["train", "--conditional", "prir"], "prir"),
    "negative beta": (["train", "--beta", -1], "beta"),
    "negative warm-up": (["train", "--kl-warmup-epochs", -1], "warmup"),
}
if "plot" in _subcommands():
    BAD.update(PLOT)
if "--conditional" in _train_flags():
    BAD.update(CONDITIONAL)

# Commands that write somewhere by default get a fresh destination inside the test folder.
_DEFAULT_OUT = {"train": "{tmp}/new-run", "compare": "{tmp}/new-report"}


class _Exploit:
    """Unpickling this would run a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _save_arrays(tmp):
    rng = np.random.default_rng(0)
    grey = rng.random((40, 20))
    arrays = {"grey": grey, "nan": np.where(grey > 0.99, np.nan, grey), "inf": np.where(grey > 0.99, np.inf, grey),
              "big": grey * 5, "binary": grey.round(), "levels": (grey * 300).round(), "small": grey[:10],
              "empty": np.zeros((0, 20)), "flat": grey[0], "text": np.array([["a", "b"]] * 10)}
    for name, x in arrays.items():
        np.savez(tmp / f"{name}.npz", x=x)
    np.savez(tmp / "key.npz", X=grey)
    (tmp / "data.csv").write_text("1,2\n")
    (tmp / "exists").mkdir()
    (tmp / "exists" / "keep.txt").write_text("keep")


def _save_runs(tmp, template):
    for name in ("ok", "truncated", "evil-pickle", "evil-zip", "mismatch", "busy", "unsaved", "badconfig"):
        shutil.copytree(template, tmp / name)
    data = (tmp / "truncated" / "checkpoint.pt").read_bytes()
    (tmp / "truncated" / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    with open(tmp / "evil-pickle" / "checkpoint.pt", "wb") as f:
        pickle.dump({"model": _Exploit(tmp / "PWNED")}, f)
    torch.save({"model": _Exploit(tmp / "PWNED")}, tmp / "evil-zip" / "checkpoint.pt")
    config = json.loads((tmp / "mismatch" / "config.json").read_text())
    (tmp / "mismatch" / "config.json").write_text(json.dumps({**config, "latent_dim": 3}))
    (tmp / "unsaved" / "checkpoint.pt").unlink()
    (tmp / "badconfig" / "config.json").write_text("{not json")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """One real run folder (a tiny PPCA model, one epoch) for the run-folder cases to copy."""
    run = tmp_path_factory.mktemp("template") / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def runner():
    runner = ForkRunner()
    yield runner
    runner.close()


@pytest.fixture
def files(tmp_path, template):
    _save_arrays(tmp_path)
    _save_runs(tmp_path, template)
    with RunLock(tmp_path / "busy" / "run.lock"):  # this test process trains into "busy"
        yield tmp_path


def _snapshot(folder):
    """Every path below ``folder`` with a hash of its content: what must not change."""
    return {str(p.relative_to(folder)): p.is_dir() or hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_exit_2(runner, files, case):
    args, expected = BAD[case]
    args = [str(a).format(tmp=files) for a in args]
    command = args[0] if args else None
    if command in _DEFAULT_OUT and "--out" not in args and "--resume" not in args:
        args += ["--out", _DEFAULT_OUT[command].format(tmp=files)]
    if command in ("train", "evaluate", "compare"):
        args.append("--no-progress")
    before = _snapshot(files)
    res = runner.run(args, cwd=ROOT)
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert expected.format(pid=os.getpid()) in lines[0], lines[0]
    assert _snapshot(files) == before  # no partial run folder, nothing overwritten, no code run


def test_the_table_covers_every_subcommand():
    covered = {args[0] for args, _ in BAD.values() if args}
    assert covered >= _subcommands() >= {"train", "evaluate", "compare", "families"} and len(BAD) >= 20


def test_the_runner_is_a_real_command_line(runner):
    """The fork runner gives what ``python -m pyrovae`` gives (checked here on one case)."""
    import subprocess
    import sys

    args = ["train", "--latent-dim", "0", "--out", "/nonexistent/never"]
    real = subprocess.run([sys.executable, "-m", "pyrovae", *args], capture_output=True, text=True, cwd=ROOT)
    forked = runner.run(args, cwd=ROOT)
    assert (forked.returncode, forked.stdout, forked.stderr) == (real.returncode, real.stdout, real.stderr)

"""The command line, run as a subprocess: train -> evaluate, resume, and one-line errors for bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pyrovae import evaluate_elbo, load_run, log_likelihood


def pyrovae(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pyrovae", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


SMALL = ["--latent-dim", 5, "--hidden", 64, "--no-progress", "--device", "cpu"]


def test_train_then_evaluate_matches_python_api(tmp_path):
    run = tmp_path / "run"
    res = pyrovae("train", "--epochs", 2, "--out", run, *SMALL)
    assert res.returncode == 0, res.stderr
    assert "test ELBO (analytic)" in res.stdout
    for name in ("config.json", "checkpoint.pt", "metrics.json", "summary.json"):
        assert (run / name).is_file()
    res = pyrovae("evaluate", run, "--samples", 50, "--no-progress")
    assert res.returncode == 0, res.stderr
    summary = json.loads((run / "summary.json").read_text())
    vae, config, data, _ = load_run(run)
    assert summary["test_elbo"]["mc"] == evaluate_elbo(vae, data.test, "mc", seed=config.seed)
    assert summary["test_elbo"]["analytic"] == evaluate_elbo(vae, data.test, "analytic", seed=config.seed)
    assert summary["log_likelihood"] == {
        "nats": log_likelihood(vae, data.test, num_samples=50, seed=config.seed), "num_samples": 50}
    assert summary["log_likelihood"]["nats"] > summary["test_elbo"]["mc"] - 0.5
    assert f"{summary['log_likelihood']['nats']:.3f}" in res.stdout


def test_resume_continues_and_refuses_conflicts(tmp_path):
    run = tmp_path / "run"
    assert pyrovae("train", "--epochs", 1, "--out", run, *SMALL).returncode == 0
    clash = pyrovae("train", "--epochs", 2, "--out", run, "--resume", "--latent-dim", 7)
    assert clash.returncode == 2 and "--latent-dim 7 (run has 5)" in clash.stderr
    res = pyrovae("train", "--epochs", 2, "--out", run, "--resume", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert [r["epoch"] for r in json.loads((run / "metrics.json").read_text())] == [1, 2]
    assert json.loads((run / "config.json").read_text())["epochs"] == 2


def test_resume_of_a_python_run_is_refused_in_one_line(tmp_path):
    import torch
    from pyrovae import VAE, fit

    fit(VAE(20, 2, hidden=(8,)), torch.rand(40, 20).round(), epochs=1, batch_size=10, device="cpu",
        progress=False, out=tmp_path / "py")
    res = pyrovae("train", "--resume", "--out", tmp_path / "py", "--epochs", 2)
    assert res.returncode == 2 and "in-memory data" in res.stderr and len(res.stderr.splitlines()) == 1
    assert pyrovae("evaluate", tmp_path / "py").returncode == 2


def test_resume_may_move_the_data_dir(tmp_path):
    run = tmp_path / "run"
    assert pyrovae("train", "--epochs", 1, "--out", run, *SMALL).returncode == 0
    res = pyrovae("train", "--resume", "--out", run, "--epochs", 2, "--data-dir", tmp_path, "--no-progress")
    assert res.returncode == 0, res.stderr
    assert json.loads((run / "config.json").read_text())["data_dir"] == str(tmp_path)


def test_same_command_same_numbers(tmp_path):
    """The seed covers the initial weights, data order and noise: two runs agree exactly."""
    for name in ("a", "b"):
        assert pyrovae("train", "--epochs", 1, "--out", tmp_path / name, *SMALL).returncode == 0
    a, b = (json.loads((tmp_path / n / "metrics.json").read_text())[0] for n in ("a", "b"))
    assert a["test_elbo"] == b["test_elbo"] and a["train_elbo"] == b["train_elbo"]


def test_families_lists_and_tables():
    from pyrovae import FAMILIES, LIKELIHOODS, PRIORS

    res = pyrovae("families")
    assert res.returncode == 0
    listed = {line.split()[0] for line in res.stdout.splitlines() if line.strip()}
    assert set(FAMILIES.names()) | set(PRIORS.names()) | set(LIKELIHOODS.names()) <= listed
    table = pyrovae("families", "--kl-table").stdout.splitlines()
    header = table[1].split()
    assert header == list(PRIORS.names())
    cells = {line.split()[0]: dict(zip(header, line.split()[1:])) for line in table[2:]}
    assert set(cells) == set(FAMILIES.names())
    assert cells["normal"]["normal"] == "yes" and cells["student-t"]["normal"] == "-"
    assert cells["normal"]["gamma"] == "x"


@pytest.mark.parametrize("cmd", [[], ["train"], ["evaluate"], ["compare"], ["families"]])
def test_help(cmd):
    res = pyrovae(*cmd, "--help")
    assert res.returncode == 0 and "usage: pyrovae" in res.stdout


@pytest.fixture
def files(tmp_path):
    x = np.random.default_rng(0).random((40, 784))
    nan = x.copy()
    nan[3, 5] = np.nan
    np.savez(tmp_path / "nan.npz", x=nan)
    np.savez(tmp_path / "big.npz", x=x * 5)
    np.savez(tmp_path / "small.npz", x=x[:10])
    (tmp_path / "exists").mkdir()
    (tmp_path / "exists" / "keep.txt").write_text("keep")
    return tmp_path


BAD = {
    "unknown dataset": (["train", "--dataset", "mnist5k"], "did you mean 'mnist-5k'"),
    "unknown posterior": (["train", "--posterior", "gaussian"], "unknown posterior family 'gaussian'"),
    "unknown prior": (["train", "--prior", "lapalce"], "did you mean 'laplace'"),
    "unknown likelihood": (["train", "--likelihood", "bernouli"], "did you mean 'bernoulli'"),
    "unknown estimator": (["train", "--estimator", "analytc"], "did you mean 'analytic'"),
    "unknown optimizer": (["train", "--optimizer", "adamw"], "did you mean 'adam'"),
    "unknown binarization": (["train", "--binarize", "dynamc"], "did you mean 'dynamic'"),
    "zero latent": (["train", "--latent-dim", 0], "latent-dim must be a positive integer"),
    "negative hidden": (["train", "--hidden", "400,-3"], "hidden sizes must be positive"),
    "bad hidden text": (["train", "--hidden", "big"], "comma-separated integers"),
    "zero batch": (["train", "--batch-size", 0], "batch-size must be a positive integer"),
    "zero epochs": (["train", "--epochs", 0], "epochs must be a positive integer"),
    "negative lr": (["train", "--lr", -0.1], "lr must be positive"),
    "nan in file": (["train", "--dataset", "{tmp}/nan.npz", "--binarize", "none"], "NaN"),
    "bernoulli outside [0,1]": (["train", "--dataset", "{tmp}/big.npz", "--binarize", "none"],
                                "outside the support of the 'bernoulli'"),
    "batch larger than data": (["train", "--dataset", "{tmp}/small.npz", "--binarize", "none"],
                               "larger than the 8 training points"),
    "missing data file": (["train", "--dataset", "{tmp}/nope.npz"], "nope.npz"),
    "no closed-form KL": (["train", "--posterior", "student-t", "--estimator", "analytic"],
                          "posterior StudentT with prior Normal"),
    "support mismatch": (["train", "--posterior", "normal", "--prior", "gamma"],
                         "posterior 'normal' (support Real()^k) is not inside the support of prior 'gamma'"),
    "learnable prior has no closed-form KL": (["train", "--prior", "mog", "--estimator", "analytic"],
                                              "posterior Normal with prior MixtureSameFamily"),
    "flow needs two latents": (["train", "--posterior", "iaf", "--latent-dim", 1], "at least 2 latent dimensions"),
    "compare unknown estimator": (["compare", "--estimators", "mc,analitic"], "did you mean 'analytic'"),
    "compare zero latent": (["compare", "--latent-dims", "0,2"], "sizes must be positive"),
    "compare zero seeds": (["compare", "--seeds", 0, "--out", "{tmp}/cmp"], "--seeds must be a positive integer"),
    "compare existing out": (["compare", "--out", "{tmp}/exists"], "already exists"),
    "existing out folder": (["train", "--out", "{tmp}/exists"], "already exists"),
    "resume missing run": (["train", "--resume", "--out", "{tmp}/ghost"], "not a pyrovae run folder"),
    "evaluate missing run": (["evaluate", "{tmp}/ghost"], "not a pyrovae run folder"),
    "evaluate zero samples": (["evaluate", "{tmp}/ghost", "--samples", 0], "--samples must be a positive"),
    "unknown subcommand": (["trian"], "invalid choice"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_exit_2(files, case):
    args, expected = BAD[case]
    args = [str(a).format(tmp=files) for a in args]
    if args[0] == "train" and "--out" not in args:
        args += ["--out", str(files / "new-run")]
    before = sorted(p.name for p in files.iterdir())
    res = pyrovae(*args, "--no-progress" if args[0] != "trian" else "--help")
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert expected in lines[0], lines[0]
    assert sorted(p.name for p in files.iterdir()) == before  # no partial run folder
    assert (files / "exists" / "keep.txt").read_text() == "keep"

"""The command line, run as a subprocess: train -> evaluate, resume, help (bad input: test_bad_input.py)."""

import json
import re
import subprocess
import sys

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
    # The same seeded computation in another process: equal up to float32 summation order (MKL may
    # split a product over fewer threads when the machine is busy).
    same = dict(rel=1e-6, abs=0)
    assert summary["test_elbo"]["mc"] == pytest.approx(evaluate_elbo(vae, data.test, "mc", seed=config.seed), **same)
    assert summary["test_elbo"]["analytic"] == pytest.approx(
        evaluate_elbo(vae, data.test, "analytic", seed=config.seed), **same)
    assert summary["log_likelihood"]["num_samples"] == 50
    assert summary["log_likelihood"]["nats"] == pytest.approx(
        log_likelihood(vae, data.test, num_samples=50, seed=config.seed), **same)
    assert summary["log_likelihood"]["nats"] > summary["test_elbo"]["mc"] - 0.5
    assert f"{summary['log_likelihood']['nats']:.3f}" in res.stdout
    # How far to trust it: the same diagnostics as the Python API, in summary.json and on the screen.
    _, diag = log_likelihood(vae, data.test, num_samples=50, seed=config.seed, return_diagnostics=True)
    saved = summary["log_likelihood"]["diagnostics"]
    assert saved["median_ess"] == pytest.approx(diag.median_ess, rel=1e-4)
    assert saved["log_px_se"] == pytest.approx(diag.log_px_se, rel=1e-4) and saved["log_px_se"] > 0
    assert saved["warning"] == diag.warning()
    assert f"median ESS {diag.median_ess:.1f}" in res.stdout


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


def test_absurd_lr_stops_naming_the_step_and_keeps_a_loadable_checkpoint(tmp_path):
    from pyrovae.checkpoint import load_checkpoint

    run = tmp_path / "run"
    res = pyrovae("train", "--dataset", "synthetic", "--likelihood", "normal", "--latent-dim", 2, "--hidden", 8,
                  "--lr", 1e6, "--checkpoint-every", 1, "--out", run, "--no-progress", "--device", "cpu")
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    step = int(re.search(r"became \S+ at epoch 1, step (\d+): ", lines[0]).group(1))
    assert f"the checkpoint at epoch 1, step {step - 1} is kept" in lines[0]
    assert load_checkpoint(run / "checkpoint.pt")["step"] == step - 1
    assert not (run / "run.lock").exists()

"""The command line, run as a subprocess: train -> evaluate, resume, help (bad input: test_bad_input.py)."""

import json
import re
import subprocess
import sys

import pytest

from pyrovae import evaluate_elbo, load_run, log_likelihood
from pyrovae.cli import main


def pyrovae(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pyrovae", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


SMALL = ["--latent-dim", 5, "--hidden", 64, "--no-progress", "--device", "cpu", "--no-figures"]


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
    _evaluate_by_ais_with_the_inference_gaps(run, vae, config, data)


def _evaluate_by_ais_with_the_inference_gaps(run, vae, config, data):
    """``--method ais`` and ``--gaps`` on the same run (training one costs more than the evaluation)."""
    res = pyrovae("evaluate", run, "--method", "ais", "--samples", 3, "--ais-steps", 10, "--gaps",
                  "--gap-points", 2, "--no-progress")
    assert res.returncode == 0, res.stderr
    summary = json.loads((run / "summary.json").read_text())
    ais = summary["log_likelihood_ais"]
    assert (ais["method"], ais["num_samples"], ais["annealing"]["steps"]) == ("ais", 3, 10)
    assert ais["nats"] == pytest.approx(
        log_likelihood(vae, data.test, method="ais", num_samples=3, ais_steps=10, seed=config.seed), rel=1e-6)
    assert f"test log p(x) (AIS, 3 chains x 10 steps): {ais['nats']:.3f}" in res.stdout
    assert summary["log_likelihood"]["num_samples"] == 50  # the importance-sampled estimate stays
    gaps = summary["inference_gaps"]
    assert gaps["num_points"] == 2 and gaps["method"] == "ais"
    assert gaps["approximation_gap"] + gaps["amortization_gap"] == pytest.approx(gaps["inference_gap"])
    assert f"amortization {gaps['amortization_gap']:.3f}" in res.stdout


def test_evaluate_refuses_an_unknown_method_before_loading_the_run(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "no-run"), "--method", "aiss"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "pyrovae evaluate: error: unknown log-likelihood method 'aiss'; did you mean 'ais'? (choices: ais, is)"]
    assert main(["evaluate", str(tmp_path / "no-run"), "--method", "ais", "--ais-steps", "0"]) == 2
    assert "--ais-steps must be a positive integer" in capsys.readouterr().err



def test_resume_continues_and_refuses_conflicts(tmp_path):
    run = tmp_path / "run"
    assert pyrovae("train", "--epochs", 1, "--out", run, *SMALL).returncode == 0
    clash = pyrovae("train", "--epochs", 2, "--out", run, "--resume", "--latent-dim", 7)
    assert clash.returncode == 2 and "--latent-dim 7 (run has 5)" in clash.stderr
    res = pyrovae("train", "--epochs", 2, "--out", run, "--resume", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert [r["epoch"] for r in json.loads((run / "metrics.json").read_text())] == [1, 2]
    assert json.loads((run / "config.json").read_text())["epochs"] == 2


def test_defaults_flags_and_progress_of_a_train_process(tmp_path):
    """One real process checks what a new user meets first (issue 20):

    - the default estimator is auto, so a family without a closed-form KL trains as it is;
    - ``--particles`` on the command line is ``num_particles`` in config.json (one declaration);
    - progress into a log (stderr is not a terminal) is plain lines, never ``\\r`` frames;
    - Pyro's "Guessed max_plate_nesting" is not announced.
    """
    run = tmp_path / "run"
    res = pyrovae("train", "--dataset", "synthetic", "--likelihood", "normal", "--posterior", "student-t",
                  "--latent-dim", 2, "--hidden", 8, "--epochs", 2, "--particles", 3, "--out", run, "--no-figures",
                  "--device", "cpu")
    assert res.returncode == 0, res.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["estimator"] == "auto" and summary["kl_routes"] == {"z": "sampled"}
    assert "KL at site 'z': sampled" in res.stdout
    assert json.loads((run / "config.json").read_text())["num_particles"] == 3
    assert "\r" not in res.stderr and "max_plate_nesting" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("train: ") and "steps (100%)" in res.stderr


def test_resume_starts_a_folder_with_no_run_and_may_lower_the_learning_rate(tmp_path):
    """A job that always passes --resume (a requeued cluster job) needs no first-time case, and a
    resume may lower the learning rate and change checkpointing; summary.json records what changed."""
    run = tmp_path / "new" / "run"
    res = pyrovae("train", "--epochs", 1, "--out", run, "--resume", *SMALL)
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip().splitlines() == [f"pyrovae train: warning: {run} holds no run yet; starting a new one"]
    assert "resumes" not in json.loads((run / "summary.json").read_text())
    res = pyrovae("train", "--epochs", 2, "--out", run, "--resume", "--lr", 1e-4, "--checkpoint-every", 7, *SMALL)
    assert res.returncode == 0, res.stderr
    config = json.loads((run / "config.json").read_text())
    assert (config["lr"], config["epochs"], config["checkpoint_every"]) == (1e-4, 2, 7)
    assert [r["epoch"] for r in json.loads((run / "metrics.json").read_text())] == [1, 2]
    resumes = json.loads((run / "summary.json").read_text())["resumes"]
    assert resumes == [{"epoch": 1, "step": 0, "changed": {"epochs": [1, 2], "lr": [1e-3, 1e-4],
                                                            "checkpoint_every": [None, 7]}}]


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


@pytest.mark.parametrize("cmd", [[], ["train"], ["evaluate"], ["compare"], ["plot"], ["sample"], ["families"]])
def test_help(cmd):
    res = pyrovae(*cmd, "--help")
    assert res.returncode == 0 and "usage: pyrovae" in res.stdout
    flags = re.findall(r"^  (--[\w-]+)(.*)$", res.stdout, re.M)
    undocumented = [flag for flag, rest in flags if not rest.strip() and flag != "--help"]
    assert not undocumented, f"flags without help: {undocumented}"  # (help on the next line is fine)


def test_version_and_top_level_help_import_neither_torch_nor_pyro():
    """``pyrovae --help`` and ``--version`` build the parser without the heavy imports (issue 20: < 0.5 s)."""
    code = ("import sys\nfrom pyrovae.cli import main\nfor argv in (['--help'], ['--version']):\n"
            "    try:\n        main(argv)\n    except SystemExit as e:\n        assert e.code == 0\n"
            "print(sorted(m for m in ('torch', 'pyro', 'matplotlib') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[]"
    assert "pyrovae 0.1.0" in res.stdout


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


def test_sample_writes_a_png_grid_or_the_arrays_and_refuses_bad_input(tmp_path, capsys):
    """``pyrovae sample RUN``: a grid of decoder means (.png) or z, mean, x and y (.npz), seeded by the run."""
    import matplotlib.image
    import numpy as np
    import torch

    from pyrovae.cli import main

    g = torch.Generator().manual_seed(0)  # 8x8 images of 4 classes: a file of one's own loads at once
    labels = torch.arange(200) % 4
    np.savez(tmp_path / "tiny.npz", x=(torch.rand(200, 8, 8, generator=g) < 0.2 + 0.2 * labels[:, None, None]).float(),
             y=labels)
    run = tmp_path / "run"  # class-conditional, so the draws cycle through the classes
    assert main(["train", "--dataset", str(tmp_path / "tiny.npz"), "--epochs", "1", "--latent-dim", "2", "--hidden",
                 "16", "--batch-size", "20", "--conditional", "prior", "--no-progress", "--no-figures", "--device",
                 "cpu", "--out", str(run)]) == 0
    res = pyrovae("sample", run, "--n", 20, "--out", tmp_path / "grid.png", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    assert str(tmp_path / "grid.png") in res.stdout
    assert matplotlib.image.imread(tmp_path / "grid.png").shape[1] >= 600  # 4 columns, one per class
    bad = pyrovae("sample", run, "--out", tmp_path / "grid.jpg")
    assert bad.returncode == 2 and "did you mean '.png'" in bad.stderr and len(bad.stderr.splitlines()) == 1
    assert not (tmp_path / "grid.jpg").exists()

    for name, seed in (("a", ["--seed", "3"]), ("b", ["--seed", "3"]), ("c", []), ("d", ["--seed", "0"])):
        assert main(["sample", str(run), "--n", "20", "--out", str(tmp_path / f"{name}.npz"), *seed]) == 0
    a, b, c, d = (np.load(tmp_path / f"{name}.npz") for name in "abcd")
    assert sorted(a.files) == ["mean", "x", "y", "z"]
    assert a["z"].shape == (20, 2) and a["mean"].shape == a["x"].shape == (20, 64)
    assert a["y"].tolist() == [r % 4 for r in range(20)]
    assert all(np.array_equal(a[k], b[k]) for k in a.files) and not np.array_equal(a["z"], c["z"])
    assert np.array_equal(c["z"], d["z"])  # the default seed is the run's (0)
    vae = load_run(run)[0]
    expected = vae.decode(torch.from_numpy(a["z"]), torch.from_numpy(a["y"])).mean
    assert np.allclose(a["mean"], expected.detach().numpy(), atol=1e-6)  # mean is E[x|z] of the drawn z
    capsys.readouterr()
    for args in (["--n", "0"], ["--out", "x.txt"]):
        assert main(["sample", str(run), *args]) == 2
    assert main(["sample", str(tmp_path / "missing")]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and "--n must be a positive integer" in errors[0] and "not a pyrovae run" in errors[2]

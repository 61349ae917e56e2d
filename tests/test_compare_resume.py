"""``pyrovae compare --resume``: a grid killed (kill -9) inside its first run and again inside its
second ends with the report numbers of an uninterrupted grid (CPU, same seeds).

As in ``test_kill.py`` the killed processes run the real command line through
``tests/kill_worker.py``, which prints a line at every checkpoint and waits at a gate: here a gate
inside a named run's folder, so each kill lands in the run it is meant for, waiting for events only.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pyrovae.cli import main
from pyrovae.errors import PyroVAEError
from pyrovae.grid import GridFolder

WORKER = Path(__file__).with_name("kill_worker.py")
RUNS = ("nz2-seed0-mc", "nz2-seed0-analytic")


@pytest.fixture(scope="module")
def grid_args(tmp_path_factory):
    """A grid of two runs on 240 binary rows of 12 pixels: 1,000 samples each, 6 curve points."""
    rng = np.random.default_rng(0)
    data = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(data, x_train=(rng.random((240, 12)) < 0.3).astype("float32"),
             x_test=(rng.random((60, 12)) < 0.3).astype("float32"))
    return ["compare", "--dataset", str(data), "--binarize", "none", "--estimators", "mc,analytic",
            "--latent-dims", "2", "--seeds", "1", "--samples", "1e3", "--batch-size", "40", "--curve-points", "6",
            "--grad-points", "2", "--ll-samples", "5", "--grad-repeats", "3", "--device", "cpu", "--no-progress"]


def _numbers(out: Path):
    """The report's records without the times (which differ between any two runs)."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("seconds", "seconds_per_step", "ms_per_step")}
        return [strip(v) for v in value] if isinstance(value, list) else value
    report = json.loads((out / "report.json").read_text())
    return strip({k: report[k] for k in ("runs", "summary", "comparisons")})


def _kill_inside(args, out: Path, run: str, resume):
    """Start the grid, wait until ``run`` saved its first checkpoint (it then waits at the gate), kill -9."""
    proc = subprocess.Popen([sys.executable, str(WORKER), f"1@{run}", *args, "--out", str(out), *resume],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not (out / "runs" / run / "checkpoint.pt").is_file():
        if proc.stdout.readline() == "":  # blocks until the next save; "" if the process ended first
            proc.wait()
            raise AssertionError(f"the grid ended before {run} checkpointed: {proc.stderr.read()}")
    proc.kill()
    proc.communicate()
    assert proc.returncode == -9


def test_killed_grid_resumes_to_the_uninterrupted_numbers(grid_args, tmp_path):
    assert main([*grid_args, "--out", str(tmp_path / "reference")]) == 0
    out = tmp_path / "grid"
    _kill_inside(grid_args, out, RUNS[0], [])  # inside the first run
    assert not (out / "runs" / RUNS[0] / "record.json").exists()
    _kill_inside(grid_args, out, RUNS[1], ["--resume"])  # the first run finished, inside the second
    kept = (out / "runs" / RUNS[0] / "record.json").read_bytes()
    assert main([*grid_args, "--out", str(out), "--resume"]) == 0
    assert (out / "runs" / RUNS[0] / "record.json").read_bytes() == kept  # finished: kept, not trained again
    assert _numbers(out) == _numbers(tmp_path / "reference")
    run = json.loads((out / "report.json").read_text())["runs"][0]
    assert run["samples_seen"] == 1000 and run["curve"][-1]["samples_seen"] == 1000
    assert sorted(map(int, run["gradients"]))[0] == 0 and len(run["gradients"]) == 3  # the start and 2 points


def test_resume_with_another_grid_is_refused(grid_args, tmp_path):
    out = tmp_path / "grid"
    GridFolder(str(out), {"latent_dims": [2], "seeds": 1}, resume=False)
    with pytest.raises(PyroVAEError, match=r"was run with latent_dims = \[2\], not \[3\]; resume it with its own"):
        GridFolder(str(out), {"latent_dims": [3], "seeds": 1}, resume=True)
    GridFolder(str(out), {"latent_dims": [2], "seeds": 1, "device": "cuda"}, resume=True)  # moves work only
    res = subprocess.run([sys.executable, "-m", "pyrovae", *grid_args, "--out", str(out), "--resume"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"pyrovae compare: error: comparison in {out} was run with batch_size = None, not 40; resume it with "
        "its own settings or use another --out"]


def test_shards_sharing_a_folder_end_with_the_unsharded_numbers(grid_args, tmp_path):
    """Two processes train one grid into one folder (``--shard 0/2`` and ``1/2``, the second
    started once the first has written ``grid.json``); the command without ``--shard`` then
    trains nothing and reports the numbers of the grid run in one process."""
    assert main([*grid_args, "--out", str(tmp_path / "reference")]) == 0
    out = tmp_path / "grid"
    shards = []
    for i in range(2):
        shards.append(subprocess.Popen([sys.executable, "-m", "pyrovae", *grid_args, "--out", str(out), "--resume",
                                        "--shard", f"{i}/2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True))
        while i == 0 and not (out / "grid.json").is_file():  # the first shard creates the grid's folder
            assert shards[0].poll() is None, shards[0].communicate()
            time.sleep(0.05)  # poll for the file without taking a core from the shard that writes it
    for i, proc in enumerate(shards):
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr
        assert stdout.startswith(f"shard {i}/2: 1 runs finished")
    assert (out / "runs" / RUNS[0] / "record.json").is_file() and not (out / "report.json").exists()
    kept = {run: (out / "runs" / run / "record.json").read_bytes() for run in RUNS}
    assert main([*grid_args, "--out", str(out), "--resume"]) == 0
    assert {run: (out / "runs" / run / "record.json").read_bytes() for run in RUNS} == kept
    assert _numbers(out) == _numbers(tmp_path / "reference")


@pytest.mark.parametrize("shard, message", [
    (["--shard", "0/2"], "--shard needs the --out folder that the shards share"),
    (["--shard", "2/2"], "shard 2/2 does not exist: a grid in n shards has shards 0 to n-1"),
    (["--shard", "0/2", "--batched", "on"], "a shard trains its runs one by one in one process, into the --out "
                                            "folder the shards share: give --out, and no --batched on or torchrun"),
])
def test_a_bad_shard_is_one_line_and_exit_2(grid_args, tmp_path, shard, message):
    out = [] if message.startswith("--shard needs") else ["--out", str(tmp_path / "g")]
    res = subprocess.run([sys.executable, "-m", "pyrovae", *grid_args, *out, *shard],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"pyrovae compare: error: {message}"]
    assert not (tmp_path / "g").exists()  # refused before anything was written


def test_a_shard_that_is_not_i_of_n_is_refused_by_the_parser(grid_args, tmp_path):
    res = subprocess.run([sys.executable, "-m", "pyrovae", *grid_args, "--shard", "half"], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2 and "argument --shard: expected I/N, e.g. 0/2, got 'half'" in res.stderr

"""kill -9 a training run at random moments: every time a checkpoint loads, and the resumed run
ends with exactly the parameters of an uninterrupted one (CPU, same seed).

Nothing here waits a number of seconds for something to happen: the killed processes run the real
command line through ``tests/kill_worker.py``, which prints a line at every checkpoint and stops at
a gate, so the test waits for events. The random delay before each kill only chooses where the
kill lands (in a step, in a checkpoint write, in the evaluation at an epoch's end).
"""

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import torch

from pyrovae.checkpoint import load_checkpoint
from pyrovae.cli import main

KILLS = 10
# Small enough to be quick, long enough (80 steps an epoch, a checkpoint every 3 steps) that ten kills
# land at different places: in a step, in a checkpoint write, in the evaluation at an epoch's end.
TRAIN = ["train", "--dataset", "synthetic", "--likelihood", "normal", "--latent-dim", "2", "--hidden", "16",
         "--estimator", "mc", "--epochs", "8", "--batch-size", "50", "--checkpoint-every", "3", "--seed", "5",
         "--device", "cpu", "--no-progress", "--no-figures"]


WORKER = Path(__file__).with_name("kill_worker.py")
# Checkpoints a killed process may save before it waits at the gate: ten processes then cover at
# most 10 * 15 * 3 = 450 of the run's 640 steps, so the last --resume always has work left.
GATE = 15


def _start_and_wait_for_own_checkpoint(run, resume):
    """Start a training process and return once it has saved a checkpoint of its own.

    Waiting for its own save (not merely for a checkpoint left by the run it resumes) means the
    process is past its set-up, so every kill finds the run further on than the one before."""
    proc = subprocess.Popen([sys.executable, str(WORKER), str(GATE), *TRAIN, "--out", str(run), *resume],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.stdout.readline() != "saved\n":  # blocks until the event; "" if the process ended first
        proc.wait()
        raise AssertionError(f"training exited before its first checkpoint: {proc.stderr.read()}")
    return proc


def _strip_seconds(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def test_kill_9_ten_times_then_resume_equals_uninterrupted(tmp_path):
    start = time.perf_counter()
    assert main([*TRAIN, "--out", str(tmp_path / "reference")]) == 0  # in-process: the same code, one start-up less
    seconds = time.perf_counter() - start
    reference = load_checkpoint(tmp_path / "reference" / "checkpoint.pt")

    run, rng, stops = tmp_path / "run", random.Random(2024), []
    for _ in range(KILLS):
        resume = ["--resume"] if (run / "config.json").is_file() else []
        proc = _start_and_wait_for_own_checkpoint(run, resume)
        # Where the kill lands, in units of the whole run: ten of them add up to about a third. Not a
        # synchronization: a process that reaches the gate first waits there for the kill.
        time.sleep(rng.uniform(0.005, 0.06) * seconds)
        proc.kill()
        proc.communicate()
        assert proc.returncode == -9, "the run finished before it could be killed"
        state = load_checkpoint(run / "checkpoint.pt")  # always a whole, loadable checkpoint
        stops.append((state["epoch"], state["step"]))

    res = subprocess.run([sys.executable, "-m", "pyrovae", *TRAIN, "--out", str(run), "--resume"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "took over the stale lock" in res.stderr  # the killed run's lock was detected as stale
    final = load_checkpoint(run / "checkpoint.pt")
    assert final["model"].keys() == reference["model"].keys()
    assert all(torch.equal(final["model"][k], reference["model"][k]) for k in reference["model"])
    metrics = [json.loads((folder / "metrics.json").read_text()) for folder in (run, tmp_path / "reference")]
    assert _strip_seconds(metrics[0]) == _strip_seconds(metrics[1])
    # No lock, temporary file or anything else left over: the same files as the uninterrupted run.
    names = [sorted(p.name for p in folder.iterdir()) for folder in (run, tmp_path / "reference")]
    assert names[0] == names[1] and "checkpoint.pt" in names[0] and "run.lock" not in names[0]
    # Each kill found the run further on: every process saved at least once before it was killed.
    assert all(a < b for a, b in zip(stops, stops[1:])), stops

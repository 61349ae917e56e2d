"""The ``threads`` option: set for training, restored after it, and a note when the machine is busy."""

import subprocess
import sys

import pytest
import torch

from pyrovae import VAE, PyroVAEError, TrainOptions, fit
from pyrovae.cpu_load import passive_waits_when_busy
from pyrovae.distributed import Ranks
from pyrovae.training import threads as threads_module
from pyrovae.training.threads import busy_note, threads_for

CPU = torch.device("cpu")


def test_the_option_wins_then_one_per_rank_then_torchs_number():
    assert threads_for(3, Ranks(0, 2), CPU) == 3
    assert threads_for(None, Ranks(0, 2), CPU) == 1
    assert threads_for(None, None, CPU) == torch.get_num_threads()


@pytest.mark.parametrize("threads, load, cpus, busy", [(2, 1.2, 2, True), (2, 0.6, 2, False), (1, 1.0, 2, False),
                                                       (4, 3.0, 4, True), (8, 0.9, 8, False), (1, 5.0, 2, False)])
def test_busy_note_when_other_work_and_our_threads_exceed_the_cores(threads, load, cpus, busy):
    note = busy_note(threads, load, cpus)
    assert (note is not None) == busy
    if busy:
        assert f"load average {load:.1f} on {cpus} cores" in note and "--threads" in note


def _fit(**kw):
    torch.manual_seed(0)
    x = torch.rand(60, 12, generator=torch.Generator().manual_seed(1)).round()
    return fit(VAE(12, 2, hidden=(4,)), x, epochs=2, batch_size=20, device="cpu", **kw)


def test_training_runs_on_the_threads_asked_and_restores_torchs(monkeypatch, capsys):
    before = torch.get_num_threads()
    seen = []
    monkeypatch.setattr(threads_module.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    _fit(threads=1, callback=lambda epoch, model: seen.append(torch.get_num_threads()), progress=True)
    assert seen == [1, 1] and torch.get_num_threads() == before
    assert "machine is busy" not in capsys.readouterr().err


def test_a_busy_machine_gets_one_note_in_the_progress_output(monkeypatch, capsys):
    monkeypatch.setattr(threads_module.os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    # Two threads asked: the note does not hang on torch's own number (OMP_NUM_THREADS=1 has none).
    _fit(progress=True, threads=2)
    assert capsys.readouterr().err.count("note: the machine is busy (load average 64.0") == 1
    _fit(progress=False, threads=2)
    assert "machine is busy" not in capsys.readouterr().err


def test_threads_must_be_positive():
    with pytest.raises(PyroVAEError, match="threads must be a positive integer, got 0"):
        TrainOptions(threads=0)


@pytest.mark.parametrize("load, cpus, env, expected", [
    (1.2, 2, {}, "PASSIVE"),                           # one busy core of two: torch's 2 threads would share it
    (0.6, 2, {}, None),                                # quiet
    (1.2, 2, {"OMP_NUM_THREADS": "1"}, None),          # one thread fits the free core
    (3.0, 16, {}, "PASSIVE"),                          # 16 threads, 13 free cores
    (1.2, 2, {"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE")])  # the user's choice stands
def test_the_command_sleeps_waiting_threads_only_on_a_busy_machine(load, cpus, env, expected):
    environ = dict(env)
    assert passive_waits_when_busy(environ, load, cpus, modules={}) == (expected == "PASSIVE" and "OMP_WAIT_POLICY" not in env)
    assert environ.get("OMP_WAIT_POLICY") == expected


def test_the_policy_is_not_set_once_torch_is_loaded():
    """The OpenMP runtime has read its environment by then: setting it would claim what is not so."""
    environ = {}
    assert not passive_waits_when_busy(environ, 5.0, 2, modules={"torch": torch}) and environ == {}


def test_the_command_decides_before_torch_is_imported(tmp_path):
    """``pyrovae.cli.main`` calls the decision before anything imports torch (checked in a fresh process)."""
    probe = ("import sys, pyrovae.cpu_load as c, pyrovae.cli as cli\n"
             "seen = []\n"
             "c_orig = cli.passive_waits_when_busy\n"
             "cli.passive_waits_when_busy = lambda: seen.append('torch' in sys.modules) or c_orig()\n"
             "try:\n    cli.main(['--version'])\nexcept SystemExit:\n    pass\n"
             "print(seen)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[False]"


def test_busy_note_names_passive_waiting_when_it_is_on():
    assert "waiting threads sleep" in busy_note(2, 1.5, 2, "passive")
    assert "OMP_WAIT_POLICY=PASSIVE avoids" in busy_note(2, 1.5, 2, None)

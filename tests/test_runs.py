"""The run folder's lock and life cycle: one training at a time, stale locks, no partial folders."""

import json
import os
import socket
import subprocess
import sys
import warnings

import pytest
import torch

from pyrovae import VAE, PyroVAEError, RunFolder, fit
from pyrovae.errors import PyroVAEWarning
from pyrovae import lock as lockmod
from pyrovae.lock import RunLock, StaleLockWarning
from pyrovae.training.loop import Loop


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _stale_lock(path, pid=None, host=None):
    """A lock file as a killed process leaves it: its content, but no process holding it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid or _dead_pid(), "host": host or socket.gethostname(),
                                "started": "earlier"}))


def test_lock_is_exclusive_and_released(tmp_path):
    path = tmp_path / "run.lock"
    with RunLock(path) as held:
        assert json.loads(path.read_text())["pid"] == os.getpid()
        assert RunLock(path).holder()["pid"] == os.getpid() and held.holder()["pid"] == os.getpid()
        with pytest.raises(PyroVAEError, match=f"is in use by pid {os.getpid()} on {socket.gethostname()}"):
            RunLock(path).acquire()
    assert not path.exists() and RunLock(path).holder() is None


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    path = tmp_path / "run.lock"
    pid = _dead_pid()
    _stale_lock(path, pid)
    assert RunLock(path).holder() is None  # nobody holds it
    with pytest.warns(StaleLockWarning, match=f"took over the stale lock of pid {pid}"):
        lock = RunLock(path).acquire()
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()


def test_without_flock_the_pid_decides(tmp_path, monkeypatch):
    """Where flock is missing, a lock from this host whose pid is gone is stale; any other is not."""
    monkeypatch.setattr(lockmod, "fcntl", None)
    path = tmp_path / "run.lock"
    _stale_lock(path)
    with pytest.warns(StaleLockWarning):
        RunLock(path).acquire().release()
    for pid, host in ((os.getpid(), None), (_dead_pid(), "another-host")):
        _stale_lock(path, pid, host)
        with pytest.raises(PyroVAEError, match="is in use"):
            RunLock(path).acquire()
    # A pid that now belongs to another process than the one that wrote the lock.
    path.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "proc_start": "0"}))
    with pytest.warns(StaleLockWarning):
        RunLock(path).acquire().release()


def _fit(out, **kw):
    torch.manual_seed(0)
    x = torch.rand(60, 12).round()
    return fit(VAE(12, 2, hidden=(8,)), x, epochs=2, batch_size=20, device="cpu", progress=False, out=out, **kw)


def test_fit_refuses_a_folder_in_use_and_touches_nothing(tmp_path):
    out = tmp_path / "run"
    _fit(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with RunLock(out / "run.lock"):
        for resume in (False, True):
            with pytest.raises(PyroVAEError, match=f"in use by pid {os.getpid()}"):
                _fit(out, resume=resume)
        assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != "run.lock"} == before


def test_lock_is_held_while_training_and_gone_after(tmp_path):
    out = tmp_path / "run"
    seen = []
    _fit(out, callback=lambda epoch, vae: seen.append(RunFolder(out).lock_file.is_file()))
    assert seen == [True, True] and not RunFolder(out).lock_file.exists()


def test_a_run_killed_before_its_first_checkpoint_can_start_again(tmp_path):
    """It leaves a stale lock, its config.json and maybe a temporary file; a new run or --resume starts over."""
    reference = _fit(tmp_path / "reference")
    for resume in (False, True):
        out = tmp_path / f"killed-{resume}"
        _stale_lock(out / "run.lock")
        (out / "config.json").write_text("{}")
        (out / ".checkpoint.pt.abc123.tmp").write_bytes(b"half a checkp")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = _fit(out, resume=resume)
        messages = [str(w.message) for w in caught if issubclass(w.category, PyroVAEWarning)]
        assert "took over the stale lock" in messages[0]
        assert messages[1:] == (["run " + str(out) + " stopped before its first checkpoint; starting it over"]
                                if resume else [])
        assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.json", "metrics.json",
                                                         "report.md", "summary.json"]
        a, b = result.vae.state_dict(), reference.vae.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_interrupt_before_the_first_checkpoint_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(self, x, idx, **labels):
        raise KeyboardInterrupt

    monkeypatch.setattr(Loop, "take_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "deep" / "run")
    assert list(tmp_path.iterdir()) == []  # not even the parent folder it made


def test_interrupt_after_a_checkpoint_keeps_it_unlocked(tmp_path):
    def interrupt(epoch, vae):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "run", callback=interrupt)  # the callback runs after the epoch's checkpoint
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt", "config.json", "metrics.json"]
    assert _fit(tmp_path / "run", resume=True).metrics[-1]["epoch"] == 2


def test_fresh_run_refuses_a_nonempty_folder_even_with_a_stale_lock(tmp_path):
    out = tmp_path / "run"
    _stale_lock(out / "run.lock")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(PyroVAEError, match="already exists and is not empty"):
        _fit(out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "run.lock"]

"""Atomic writes and weights-only checkpoint loading."""

import os
import pickle

import pytest
import torch

from pyrovae import PyroVAEError
from pyrovae.checkpoint import load_checkpoint, read_json, save_checkpoint, write_json


def test_round_trip_and_permissions(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "epoch": 2, "rng": torch.get_rng_state()}
    save_checkpoint(tmp_path / "c.pt", state)
    back = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(back["model"]["w"], state["model"]["w"]) and back["epoch"] == 2
    write_json(tmp_path / "m.json", {"a": [1, 2]})
    assert read_json(tmp_path / "m.json") == {"a": [1, 2]}
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "c.pt").stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_code_carrying_checkpoint_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open("evil.pt", "wb") as f:
        pickle.dump({"model": _Exploit()}, f)
    with pytest.raises(PyroVAEError, match="refused|corrupted"):
        load_checkpoint("evil.pt")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04broken"])
def test_corrupt_checkpoint_is_one_clear_error(tmp_path, content):
    (tmp_path / "bad.pt").write_bytes(content)
    with pytest.raises(PyroVAEError, match="checkpoint .* (corrupted|refused)"):
        load_checkpoint(tmp_path / "bad.pt")


def test_truncated_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"w": torch.randn(1000)})
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "c.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(PyroVAEError, match="corrupted or truncated"):
        load_checkpoint(tmp_path / "c.pt")

"""Subnormal floats flushed to zero while fit trains on a CPU (:mod:`pyrovae.training.denormals`)."""

import pyro
import pytest
import torch

from pyrovae import VAE, fit
from pyrovae.training.denormals import denormals_flushed, flushing_denormals


def test_the_probe_sees_the_mode_and_the_block_restores_it():
    tiny = torch.tensor([1e-30], dtype=torch.float32) * 1e-10
    assert not flushing_denormals() and tiny.item() > 0  # torch's default keeps subnormals
    with denormals_flushed(keep=False, device=torch.device("cpu")) as flushed:
        assert flushed and flushing_denormals()
        assert (torch.tensor([1e-30], dtype=torch.float32) * 1e-10).item() == 0.0
    assert not flushing_denormals()
    with denormals_flushed(keep=True, device=torch.device("cpu")) as flushed:
        assert not flushed and not flushing_denormals()
    torch.set_flush_denormal(True)  # a caller's own choice survives the block
    try:
        with denormals_flushed(keep=True, device=torch.device("cpu")):
            assert not flushing_denormals()
        assert flushing_denormals()
    finally:
        torch.set_flush_denormal(False)


@pytest.mark.parametrize("keep", [False, True])
def test_fit_trains_with_subnormals_flushed_unless_kept(keep):
    seen = []
    x = torch.rand(60, 12, generator=torch.Generator().manual_seed(0)).round()
    pyro.set_rng_seed(0)
    fit(VAE(12, 2, (8,)), x, estimator="iwae", num_particles=5, epochs=2, batch_size=20, progress=False,
        keep_denormals=keep, callback=lambda epoch, model: seen.append(flushing_denormals()))
    assert seen == [not keep, not keep] and not flushing_denormals()


def test_flushing_changes_an_iwae_run_by_float32_rounding_only():
    """Ten float32 iwae steps with K = 50 give the same parameters to 1e-5 either way."""
    x = torch.rand(200, 64, generator=torch.Generator().manual_seed(1)).round()
    params = []
    for keep in (False, True):
        pyro.set_rng_seed(0)
        vae = VAE(64, 4, (32,))
        fit(vae, x, estimator="iwae", num_particles=50, epochs=1, batch_size=20, progress=False, keep_denormals=keep)
        params.append(torch.cat([p.detach().flatten() for p in vae.parameters()]))
    torch.testing.assert_close(params[0], params[1], rtol=1e-5, atol=1e-6)

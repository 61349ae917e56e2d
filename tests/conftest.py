"""Shared fixtures: every test is seeded and starts from an empty Pyro param store."""

import pyro
import pytest
import torch
from torch import nn

from pyrovae import PPCA, VAE
from pyrovae.families import LOG_VARIANCE


@pytest.fixture(autouse=True)
def _seeded():
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def ppca_setup(float64):
    """``(ppca, x, vae, exact)``: 400 points of a PPCA model, a VAE set to its exact posterior,
    and the exact mean log p(x)."""
    ppca = PPCA.random(10, 3, seed=0)
    x = ppca.sample(400, generator=torch.Generator().manual_seed(1))
    return ppca, x, exact_ppca_vae(ppca), float(ppca.log_prob(x).mean())


def exact_ppca_vae(ppca: PPCA) -> VAE:
    """A float64 VAE with linear networks set to the PPCA model and its exact posterior.

    With orthogonal W the exact posterior is N(C W^T (x - b) / s^2, C), C diagonal
    (Tipping & Bishop 1999), so a linear encoder with a constant log-variance head is exact.
    """
    W, b, s = ppca.W, ppca.b, float(ppca.s)
    d, k = W.shape
    var = 1.0 / (1.0 + (W * W).sum(0) / s**2)
    enc, dec = nn.Linear(d, 2 * k).double(), nn.Linear(k, d).double()
    with torch.no_grad():
        gain = (var[:, None] * W.T) / s**2
        enc.weight.zero_()
        enc.weight[:k] = gain
        enc.bias[:k] = -gain @ b
        enc.bias[k:] = LOG_VARIANCE.inv(var.sqrt())  # the Normal head predicts log sigma^2
        dec.weight.copy_(W)
        dec.bias.copy_(b)
    vae = VAE(d, k, hidden=(), likelihood="normal", encoder=enc, decoder=dec).double()
    with torch.no_grad():
        vae.likelihood.raw_scale.copy_(vae.likelihood._to_scale.inv(torch.tensor(s, dtype=torch.float64)))
    return vae

"""Bidirectional Monte Carlo: simulated data, and bounds that bracket the exact log p(x) and meet."""

import pyro
import pytest
import torch

import pyrovae
from pyrovae import bdmc
from pyrovae.bdmc import simulate

from conftest import exact_ppca_vae


def test_simulate_draws_latents_from_the_prior_and_data_from_the_decoder(float64):
    ppca = pyrovae.PPCA.random(10, 3, seed=0)
    torch.manual_seed(0)
    x, z = simulate(exact_ppca_vae(ppca), 4000)
    assert x.shape == (4000, 10) and z.shape == (4000, 3)
    assert float(z.mean(0).abs().max()) < 0.1 and float((z.std(0) - 1).abs().max()) < 0.05
    noise = x - z @ ppca.W.T - ppca.b  # x = W z + b + s eps
    assert float(noise.std()) == pytest.approx(float(ppca.s), rel=0.03)


def test_bdmc_brackets_the_exact_ppca_likelihood_and_closes_with_more_steps(float64):
    ppca = pyrovae.PPCA.random(10, 3, seed=0)
    vae = exact_ppca_vae(ppca)
    with torch.no_grad():
        vae.encoder.bias[:3] += 0.5  # a poor start: q off the posterior
        vae.encoder.bias[3:] -= 1.0
    short = bdmc(vae, n=30, ais_steps=5, num_samples=4, seed=0)
    exact = float(ppca.log_prob(short.data).mean())
    assert short.lower < exact - 0.5 and short.upper > exact + 0.5  # five steps: loose, but on each side
    long = bdmc(vae, n=30, ais_steps=400, num_samples=4, seed=0)
    assert torch.equal(long.data, short.data)  # the same seed simulates the same points
    exact = ppca.log_prob(long.data)
    for bound, side in ((long.lower_per_point, 1), (long.upper_per_point, -1)):
        error = side * (bound - exact)  # each bound's error towards the wrong side: <= 0 in expectation
        assert float(error.mean()) < 3 * float(error.std()) / len(error) ** 0.5
    assert abs(long.gap) < 0.1 < short.gap
    assert long.to_dict()["gap"] == pytest.approx(long.upper - long.lower)


def test_bdmc_sandwiches_a_nonlinear_vae(float64):
    pyro.set_rng_seed(0)
    vae = pyrovae.VAE(20, 2, hidden=(16,)).double()
    with torch.no_grad():
        vae.decoder[-1].weight.mul_(4.0)  # an informative likelihood: a posterior far from the prior
    loose = bdmc(vae, n=20, ais_steps=5, num_samples=4, seed=1)
    tight = bdmc(vae, n=20, ais_steps=200, num_samples=4, seed=1)
    assert loose.lower < tight.lower < tight.upper + 0.05 and tight.upper < loose.upper
    assert 0 < loose.gap and abs(tight.gap) < loose.gap / 5
    assert set(tight.to_dict()) >= {"lower", "upper", "gap", "seconds_per_point", "ais_steps"}

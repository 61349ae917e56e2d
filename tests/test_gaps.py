"""Inference gaps (Cremer et al. 2018) against the closed forms of the PPCA model."""

import pyro
import pytest
import torch

import pyrovae
from pyrovae import LocalFit, inference_gaps
from pyrovae.gaps import encoder_outputs

from conftest import exact_ppca_vae


def _correlated(ppca: pyrovae.PPCA) -> pyrovae.PPCA:
    """The same model with W's first two columns mixed: the posterior's coordinates correlate."""
    mix = torch.tensor([[1.0, 0.8, 0.0], [0.0, 0.6, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    return pyrovae.PPCA(ppca.W @ mix, ppca.b, float(ppca.s))


def _posterior(ppca, x):
    """Exact posterior N(m, L^-1): precision L = I + W^T W / s^2, m = L^-1 W^T (x - b) / s^2 (Tipping & Bishop 1999)."""
    precision = torch.eye(ppca.z_dim, dtype=torch.float64) + ppca.W.T @ ppca.W / ppca.s ** 2
    mean = torch.linalg.solve(precision, ppca.W.T @ (x - ppca.b).T / ppca.s ** 2).T
    return mean, precision


def _gaussian_elbo(ppca, x, loc, scale):
    """ELBO of q = N(loc, diag scale^2) in closed form: log p(x) - KL(q || p(z|x)), mean over rows."""
    mean, precision = _posterior(ppca, x)
    kl = 0.5 * ((torch.diagonal(precision) * scale ** 2).sum(-1) + ((loc - mean) @ precision * (loc - mean)).sum(-1)
                - ppca.z_dim - torch.logdet(precision) - torch.log(scale ** 2).sum(-1))
    return float((ppca.log_prob(x) - kl).mean())


def _mean_field_gap(ppca):
    """The approximation gap of the best diagonal Gaussian for a Gaussian posterior of precision L.

    The optimal factorized q has precision diag(L) (Bishop 2006, "Pattern recognition and machine
    learning", section 10.1.2), so KL(q* || p) = (sum_i log L_ii - log det L) / 2: zero exactly
    when L is diagonal (W's columns orthogonal), positive otherwise (Hadamard's inequality).
    """
    _, precision = _posterior(ppca, torch.zeros(1, ppca.x_dim, dtype=torch.float64))
    return 0.5 * float(torch.log(torch.diagonal(precision)).sum() - torch.logdet(precision))


@pytest.mark.parametrize("correlated", [False, True])
def test_gaps_add_up_to_their_closed_forms_on_ppca(float64, correlated):
    ppca = pyrovae.PPCA.random(10, 3, seed=0)
    ppca = _correlated(ppca) if correlated else ppca
    x = ppca.sample(40, generator=torch.Generator().manual_seed(1))
    vae = exact_ppca_vae(ppca)
    with torch.no_grad():
        vae.encoder.bias[:3] += 0.5  # the encoder's q is off, so the amortization gap is not zero
        vae.encoder.bias[3:] -= 1.0
        q = vae.encode(x).base_dist
    gaps = inference_gaps(vae, x, num_samples=16, ais_steps=250, local=LocalFit(steps=1000), seed=0)
    exact, approximation = float(ppca.log_prob(x).mean()), _mean_field_gap(ppca)
    assert (approximation > 0.3) == correlated and approximation >= 0
    assert gaps.log_px == pytest.approx(exact, abs=0.05)
    # 1000 samples per point of weights that spread over nats (the correlated model's encoder is far off).
    assert gaps.elbo_encoder == pytest.approx(_gaussian_elbo(ppca, x, q.loc, q.scale), abs=0.1)
    assert gaps.elbo_optimized == pytest.approx(exact - approximation, abs=0.02)
    assert gaps.approximation_gap == pytest.approx(approximation, abs=0.05)
    assert gaps.amortization_gap > 1.0
    assert gaps.elbo_encoder + gaps.amortization_gap + gaps.approximation_gap == pytest.approx(exact, abs=0.05)
    record = gaps.to_dict()
    assert record["inference_gap"] == pytest.approx(gaps.log_px - gaps.elbo_encoder)
    assert record["seconds_per_point"] > 0 and record["log_px_diagnostics"]["num_points"] == 40


@pytest.mark.parametrize("conditional", ["none", "full"])
def test_encoder_outputs_are_what_the_posterior_head_receives(float64, conditional):
    pyro.set_rng_seed(0)
    vae = pyrovae.VAE(6, 2, hidden=(8,), posterior="gamma", conditional=conditional, num_classes=3).double()
    x, y = torch.rand(5, 6, dtype=torch.float64), torch.tensor([0, 1, 2, 1, 0])
    raw = encoder_outputs(vae, x, y)
    assert raw.shape == (5, vae.posterior_family.head_size(2))
    ours, theirs = vae.posterior(raw).base_dist, vae.encode(x, y).base_dist
    assert torch.equal(ours.concentration, theirs.concentration) and torch.equal(ours.rate, theirs.rate)


def test_local_fits_improve_on_the_encoder_for_a_constrained_family(float64):
    pyro.set_rng_seed(0)
    vae = pyrovae.VAE(12, 2, hidden=(16,), posterior="beta").double()
    x = (torch.rand(10, 12, generator=torch.Generator().manual_seed(0)) < 0.3).double()
    gaps = inference_gaps(vae, x, method="is", num_samples=2000, local=LocalFit(steps=100, elbo_particles=500),
                          seed=0)
    assert gaps.amortization_gap > 0.05 and gaps.approximation_gap > -0.05
    assert gaps.elbo_encoder < gaps.elbo_optimized <= gaps.log_px + 0.05

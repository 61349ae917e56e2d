"""Closed-form KL lookup and the diagonal-Gaussian KL of seed 000 eq. 4."""

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrovae import VAE, elbo_terms, estimator
from pyrovae.kl import ANALYTIC, SAMPLED, describe, has_closed_form_kl


def _kl_only_model(mu, sigma):
    """A model/guide pair with one latent and no observation: the negative ELBO is exactly KL(q||p)."""

    def model():
        with pyro.plate("data", mu.shape[0]):
            pyro.sample("z", dist.Normal(torch.zeros_like(mu[0]), 1.0).to_event(1))

    def guide():
        with pyro.plate("data", mu.shape[0]):
            pyro.sample("z", dist.Normal(mu, sigma).to_event(1))

    return model, guide


def test_analytic_kl_matches_eq4(float64):
    mu, sigma = torch.randn(7, 5), torch.rand(7, 5) + 0.1
    model, guide = _kl_only_model(mu, sigma)
    kl = estimator("analytic").differentiable_loss(model, guide)
    expected = 0.5 * (mu**2 + sigma**2 - torch.log(sigma**2) - 1).sum()
    assert abs(float(kl - expected)) < 1e-10


def test_elbo_terms_kl_matches_eq4_on_vae(float64):
    vae = VAE(12, 3, hidden=(8,)).double()
    x = torch.rand(9, 12).round()
    with torch.no_grad():
        q = vae.encode(x).base_dist
        expected = 0.5 * (q.loc**2 + q.scale**2 - torch.log(q.scale**2) - 1).sum(-1).mean()
    assert abs(elbo_terms(vae, x, seed=0)["kl"] - float(expected)) < 1e-10


@pytest.mark.parametrize("q, p, expected", [
    (dist.Normal(0.0, 1.0), dist.Normal(1.0, 2.0), True),
    (dist.Normal(torch.zeros(3), 1.0).to_event(1), dist.Normal(torch.zeros(3), 1.0).to_event(1), True),
    (dist.StudentT(3.0, 0.0, 1.0), dist.Normal(0.0, 1.0), False),
    (dist.Normal(torch.zeros(3), 1.0).to_event(1), dist.StudentT(3.0, torch.zeros(3), 1.0).to_event(1), False),
])
def test_has_closed_form_kl(q, p, expected):
    assert has_closed_form_kl(q, p) is expected
    assert has_closed_form_kl(q, p) is expected  # memoized answer is the same


def test_describe_looks_through_wrappers():
    assert describe(dist.Normal(torch.zeros(2), 1.0).to_event(1)) == "Normal"


def test_routes_reported_by_auto():
    x = torch.rand(4, 6).round()
    for posterior, route in (("normal", ANALYTIC), ("student-t", SAMPLED)):
        vae = VAE(6, 2, hidden=(5,), posterior=posterior)
        est = estimator("auto")
        est.loss(vae.model, vae.guide, x)
        assert est.kl_routes == {"z": route}

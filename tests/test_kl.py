"""Closed-form KL lookup and the diagonal-Gaussian KL of Kingma & Welling 2013, appendix B."""

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


@pytest.mark.parametrize("family", ["full-normal", "lowrank-normal"])
@pytest.mark.parametrize("standard_prior", [True, False])
def test_gaussian_posterior_kl_against_diagonal_prior(float64, family, standard_prior):
    """kl._kl_gaussian_diagonal equals torch's Gaussian-Gaussian KL with the prior as a full MVN."""
    from pyrovae import FAMILIES
    from pyrovae.families import FixedPrior

    torch.manual_seed(3)
    k, fam = 5, FAMILIES[family]
    q = fam.from_raw(torch.randn(4, fam.head_size(k)), k)
    p = (FixedPrior(FAMILIES["normal"], k)() if standard_prior else
         dist.Normal(torch.randn(4, k), torch.rand(4, k) + 0.3).to_event(1))
    base = p.base_dist.expand(torch.Size([4, k]))
    full = torch.distributions.MultivariateNormal(base.loc, scale_tril=torch.diag_embed(base.scale))
    q_full = torch.distributions.MultivariateNormal(q.mean, covariance_matrix=q.covariance_matrix)
    expected = torch.distributions.kl_divergence(q_full, full)
    assert torch.allclose(torch.distributions.kl_divergence(q, p), expected, rtol=0, atol=1e-12)
    assert expected.shape == (4,) and bool((expected > 0).all())


def test_gaussian_posterior_kl_needs_a_normal_prior():
    q = dist.MultivariateNormal(torch.zeros(3), torch.eye(3))
    assert not has_closed_form_kl(q, dist.Laplace(torch.zeros(3), 1.0).to_event(1))

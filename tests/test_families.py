"""Every registered family and prior: heads, reparameterized gradients, closed-form KLs, training.

Tests are parametrized over the registries, so a newly registered family is tested automatically.
"""

import math

import pyro.distributions as dist
import pytest
import torch
from torch.distributions import constraints, kl_divergence

from pyrovae import VAE, PyroVAEError, fit, load_dataset
from pyrovae.families import (FAMILIES, LOG_VARIANCE, PRIORS, ParametricFamily, check_compatible,
                              closed_form_table, support_within)

ALL = FAMILIES.names()
PARAMETRIC = [n for n in ALL if isinstance(FAMILIES[n], ParametricFamily)]
#: Families whose rsample is reparameterized implicitly (Figurnov et al. 2018): the gradient is
#: -dF/dtheta / q(z) at fixed z, not the derivative of the sampler's own path, so fixed-noise
#: finite differences of the sampler do not apply; their gradients are checked for unbiasedness.
IMPLICIT = [n for n in ALL if FAMILIES[n].route == "implicit"]
EXPLICIT = [n for n in ALL if n not in IMPLICIT]
Z = 3


def _raw(name, batch=2, scale=0.5):
    return torch.randn(batch, FAMILIES[name].head_size(Z)) * scale


@pytest.mark.parametrize("name", ALL)
def test_head_gives_a_reparameterized_vector_distribution(float64, name):
    head = FAMILIES[name].posterior_head(Z).double()
    q = head(_raw(name))
    assert q.has_rsample and q.event_shape == (Z,) and q.batch_shape == (2,)
    z = q.rsample()
    assert bool(FAMILIES[name].support.check(z).all())
    assert torch.isfinite(q.log_prob(z)).all()


@pytest.mark.parametrize("name", PARAMETRIC)
def test_head_round_trip(float64, name):
    fam = FAMILIES[name]
    q = fam.from_raw(_raw(name), Z)
    values = {p.name: getattr(q.base_dist if fam.event_dim == 0 else q, p.name) for p in fam.params}
    again = fam.from_raw(fam.raw_from_params(**values), Z)
    for p in fam.params:
        other = getattr(again.base_dist if fam.event_dim == 0 else again, p.name)
        assert torch.allclose(other, values[p.name], atol=1e-9)


@pytest.mark.parametrize("name", EXPLICIT)
def test_sample_gradient_matches_finite_differences(float64, name):
    """d z / d raw from rsample equals central finite differences at fixed noise (fixed seed)."""
    head = FAMILIES[name].posterior_head(Z).double()
    raw = _raw(name, batch=1).requires_grad_(True)
    weights = torch.randn(Z)  # a random linear functional of z, so every coordinate matters

    def f(r):
        torch.manual_seed(7)
        return (head(r).rsample() * weights).sum()

    (grad,) = torch.autograd.grad(f(raw), raw)
    h = 1e-6
    for i in range(raw.shape[-1]):
        e = torch.zeros_like(raw)
        e[0, i] = h
        fd = (f(raw.detach() + e) - f(raw.detach() - e)) / (2 * h)
        assert grad[0, i].item() == pytest.approx(fd.item(), rel=1e-4, abs=1e-6), i


@pytest.mark.parametrize("name", IMPLICIT)
def test_implicit_gradient_is_unbiased(float64, name):
    """E[d z / d raw] equals d E[z] / d raw (the closed-form mean), within 4 standard errors."""
    fam = FAMILIES[name]
    raw = _raw(name, batch=1).requires_grad_(True)
    q = fam.from_raw(raw, Z)
    n = 20000
    z = q.rsample((n,)).squeeze(1)
    w = torch.randn(Z)
    per_sample = torch.stack([torch.autograd.grad((z[k] * w).sum(), raw, retain_graph=True)[0][0]
                              for k in range(0, n, 20)])
    (exact,) = torch.autograd.grad((q.mean * w).sum(), raw)
    mean, se = per_sample.mean(0), per_sample.std(0) / math.sqrt(len(per_sample))
    assert ((mean - exact[0]).abs() <= 4 * se + 1e-9).all(), (mean, exact, se)


def _closed_form_pairs():
    table = closed_form_table()
    return [pair for pair, v in table.items() if v == "yes"]


@pytest.mark.parametrize("q_name, p_name", _closed_form_pairs())
def test_closed_form_kl_equals_monte_carlo(float64, q_name, p_name):
    """KL(q||p) in closed form equals a 20,000-sample mean of log q - log p within 4 SE."""
    q = FAMILIES[q_name].posterior_head(Z).double()(_raw(q_name, batch=1, scale=0.3))
    p = PRIORS[p_name].build(Z).double()()
    z = q.sample((20000,))
    diff = q.log_prob(z) - p.log_prob(z)
    kl = kl_divergence(q, p)
    se = diff.std(0) / math.sqrt(len(diff))
    assert torch.isfinite(kl).all()
    assert ((diff.mean(0) - kl).abs() <= 4 * se).all(), (kl, diff.mean(0), se)


def test_kumaraswamy_density_is_torchs_inside_and_finite_near_one(float64):
    from pyrovae.families.builtin import OpenKumaraswamy

    a, b = torch.tensor([0.3, 2.0, 7.0]), torch.tensor([0.5, 1.5, 40.0])
    z = torch.tensor([0.2, 0.5, 0.9])
    assert torch.allclose(OpenKumaraswamy(a, b).log_prob(z), dist.Kumaraswamy(a, b).log_prob(z), atol=1e-10)
    near_one = torch.full((3,), 1 - 1.2e-7, dtype=torch.float32)
    assert torch.isfinite(OpenKumaraswamy(a.float(), b.float()).log_prob(near_one)).all()


def test_normal_head_predicts_log_variance(float64):
    raw = torch.tensor([0.3, -1.2])
    assert torch.allclose(LOG_VARIANCE(raw), torch.exp(raw / 2))
    q = FAMILIES["normal"].from_raw(torch.tensor([[0.5, 0.3]]))
    assert q.base_dist.scale.item() == pytest.approx(math.exp(0.15))


def test_support_checks():
    real_k, pos_k = constraints.independent(constraints.real, 1), constraints.independent(constraints.positive, 1)
    assert support_within(pos_k, real_k) and not support_within(real_k, pos_k)
    assert support_within(constraints.unit_interval, constraints.positive)  # endpoints carry no mass
    assert not support_within(constraints.simplex, constraints.independent(constraints.unit_interval, 1))
    with pytest.raises(PyroVAEError, match="posterior 'normal' .* not inside the support of prior 'gamma'"):
        VAE(10, 2, posterior="normal", prior="gamma")
    check_compatible(FAMILIES["gamma"], "normal", PRIORS["normal"].support)


@pytest.mark.parametrize("name", ALL)
def test_default_prior_is_compatible(name):
    fam = FAMILIES[name]
    check_compatible(fam, fam.default_prior, PRIORS[fam.default_prior].support)


def test_register_refuses_duplicates_and_bad_routes():
    with pytest.raises(PyroVAEError, match="already registered"):
        FAMILIES.register("normal", FAMILIES["normal"])
    with pytest.raises(PyroVAEError, match="route must be one of"):
        ParametricFamily("x", dist.Normal, (), "magic")


def test_kl_table_shape_and_known_entries():
    table = closed_form_table()
    assert set(table) == {(q, p) for q in ALL for p in PRIORS.names()}
    assert table["normal", "normal"] == "yes" and table["full-normal", "normal"] == "yes"
    assert table["student-t", "normal"] == "-" and table["iaf", "normal"] == "-"
    assert table["normal", "gamma"] == "x" and table["dirichlet", "normal"] == "x"


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("mnist-5k", binarize="static", seed=0)
    return d.train, d.test


def _estimators(name):
    fam = FAMILIES[name]
    table = closed_form_table()
    return ["mc"] + (["analytic"] if table[name, fam.default_prior] == "yes" else [])


@pytest.mark.parametrize("name, estimator", [(n, e) for n in ALL for e in _estimators(n)])
def test_two_epochs_beat_the_untrained_model(digits, name, estimator):
    """Each family with its default prior learns: 2 epochs gain >= 50 nats/point on held-out digits."""
    from pyrovae import evaluate_elbo

    train, test = digits
    torch.manual_seed(0)
    vae = VAE(784, 8, hidden=(200,), posterior=name)
    before = evaluate_elbo(vae, test, "mc", seed=0)
    fit(vae, train, estimator=estimator, epochs=2, batch_size=100, device="cpu", progress=False)
    after = evaluate_elbo(vae, test, "mc", seed=0)
    assert math.isfinite(after) and after > before + 50, (before, after)


def test_standard_normal_prior_is_normal_0_1(float64):
    """The normal family's prior has the law of Normal(0, 1): log-density, KL, shapes and samples."""
    from pyrovae.families.builtin import StandardNormal

    torch.manual_seed(0)
    prior = VAE(6, 4, (5,)).double().prior()
    assert isinstance(prior.base_dist, StandardNormal)
    ref = dist.Normal(torch.zeros(4), torch.ones(4)).to_event(1)
    z = torch.randn(3, 7, 4)
    assert torch.allclose(prior.log_prob(z), ref.log_prob(z), rtol=0, atol=1e-12)
    q = dist.Normal(torch.randn(7, 4), torch.rand(7, 4) + 0.5).to_event(1)
    kl = kl_divergence(q, prior)  # closed form, Kingma & Welling 2013, appendix B: 1/2 sum(mu^2 + s^2 - log s^2 - 1)
    s2 = q.base_dist.scale ** 2
    assert torch.allclose(kl, 0.5 * (q.base_dist.loc ** 2 + s2 - s2.log() - 1).sum(-1), rtol=0, atol=1e-12)
    wide = prior.base_dist.expand((7, 4))
    assert type(wide) is StandardNormal and wide.batch_shape == (7, 4)
    assert torch.allclose(wide.log_prob(z), dist.Normal(0.0, 1.0).log_prob(z))
    draws = prior.sample((20000,))
    assert abs(float(draws.mean())) < 0.02 and abs(float(draws.std()) - 1) < 0.02

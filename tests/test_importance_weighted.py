"""The estimators beyond the paper: iwae, stl and dreg (bounds, unbiasedness, the STL variance fact)."""

import math

import pyro
import pytest
import torch

from pyrovae import VAE, PyroVAEError, estimator, evaluate_elbo



def _grads(vae, x, name, particles):
    vae.zero_grad()
    est = estimator(name, particles, max_plate_nesting=1)
    est.differentiable_loss(vae.model, vae.guide, x).backward()
    return {n: p.grad.detach().clone() for n, p in vae.named_parameters()}


def _gradient_samples(vae, x, name, repeats, particles):
    """``repeats`` independent gradient estimates, each the mean of ``particles`` vectorized draws."""
    draws = [_grads(vae, x, name, particles) for _ in range(repeats)]
    return {n: torch.stack([d[n] for d in draws]) for n in draws[0]}


def _assert_same_expectation(a, b, projections=3):
    """Per parameter tensor, random projections of the two mean gradients agree within 4 SE."""
    g = torch.Generator().manual_seed(0)
    for name in a:
        flat_a, flat_b = a[name].flatten(1), b[name].flatten(1)
        for _ in range(projections):
            v = torch.randn(flat_a.shape[1], generator=g, dtype=flat_a.dtype)
            pa, pb = flat_a @ v, flat_b @ v
            se = math.sqrt(pa.var() / len(pa) + pb.var() / len(pb))
            assert abs(float(pa.mean() - pb.mean())) <= 4 * se + 1e-12, (name, float(pa.mean()), float(pb.mean()), se)


@pytest.fixture
def small_vae(float64):
    torch.manual_seed(3)
    vae = VAE(8, 2, hidden=(6,)).double()
    return vae, torch.rand(5, 8, dtype=torch.float64).round()


def test_stl_and_mc_have_the_same_expected_gradient(small_vae):
    vae, x = small_vae
    _assert_same_expectation(_gradient_samples(vae, x, "stl", 200, 50), _gradient_samples(vae, x, "mc", 200, 50))


def test_dreg_and_iwae_have_the_same_expected_gradient(small_vae):
    """Decoder: the same estimator in expectation; encoder: both unbiased for grad of the IWAE bound."""
    vae, x = small_vae
    dreg = _gradient_samples(vae, x, "dreg", 400, 5)
    iwae = _gradient_samples(vae, x, "iwae", 400, 5)
    _assert_same_expectation(dreg, iwae)


def test_dreg_lowers_encoder_variance(small_vae):
    """Measured, not a theorem at every point, but large here: the reason DReG exists."""
    vae, x = small_vae
    dreg = _gradient_samples(vae, x, "dreg", 200, 10)
    iwae = _gradient_samples(vae, x, "iwae", 200, 10)
    enc = [n for n in dreg if n.startswith("encoder")]
    assert sum(dreg[n].var(0).sum() for n in enc) < sum(iwae[n].var(0).sum() for n in enc)


def test_stl_encoder_gradient_is_exactly_zero_at_the_true_posterior(ppca_setup):
    p, x, vae, exact = ppca_setup
    encoder = [n for n, _ in vae.named_parameters() if n.startswith("encoder")]
    for seed in range(5):
        torch.manual_seed(seed)
        stl = _grads(vae, x, "stl", 1)
        assert max(float(stl[n].abs().max()) for n in encoder) < 1e-8
    mc = _gradient_samples(vae, x, "mc", 20, 1)
    assert max(float(mc[n].std(0).max()) for n in encoder) > 1e-3  # the score term is noise


def _perturbed(vae):
    with torch.no_grad():
        vae.encoder.bias += 0.4
    return vae


def test_iwae_with_one_particle_is_the_elbo_in_expectation(ppca_setup):
    p, x, vae, exact = ppca_setup
    _perturbed(vae)
    iw = torch.tensor([evaluate_elbo(vae, x, "iwae", 1, seed=s) for s in range(30)])
    mc = torch.tensor([evaluate_elbo(vae, x, "mc", 1, seed=100 + s) for s in range(30)])
    se = math.sqrt(iw.var() / 30 + mc.var() / 30)
    assert abs(float(iw.mean() - mc.mean())) < 4 * se


def test_iwae_bound_grows_with_k_and_stays_below_log_px(ppca_setup):
    p, x, vae, exact = ppca_setup
    _perturbed(vae)
    bounds = [sum(evaluate_elbo(vae, x, "iwae", k, seed=s) for s in range(5)) / 5 for k in (1, 5, 50)]
    assert bounds[0] < bounds[1] < bounds[2] < exact, (bounds, exact)
    assert evaluate_elbo(vae, x, "dreg", 50, seed=0) == evaluate_elbo(vae, x, "iwae", 50, seed=0)


def test_iwae_scales_the_bound_not_the_weights_under_subsampling(ppca_setup):
    """With plate(size=N, subsample=idx) the bound is N/M sum_i logmeanexp_k log w_ik.

    Pyro's RenyiELBO puts the N/M factor inside the log-mean-exp (it uses scaled site
    log-densities), which is not a bound of the full data set; without subsampling the two agree.
    """
    from pyrovae import log_weights

    p, x, vae, exact = ppca_setup
    _perturbed(vae)
    idx = torch.arange(0, 400, 10)  # M = 40 of N = 400: scale 10
    est = estimator("iwae", 20, max_plate_nesting=1)
    torch.manual_seed(0)
    ours = -est.loss(vae.model, vae.guide, x, subsample=idx)
    torch.manual_seed(0)
    with torch.no_grad():
        lw = log_weights(vae.model, vae.guide, x[idx], num_particles=20)
    assert ours == pytest.approx(10 * float((lw.logsumexp(0) - math.log(20)).sum()), rel=1e-9)
    renyi = pyro.infer.RenyiELBO(alpha=0, num_particles=20, vectorize_particles=True, max_plate_nesting=1)
    torch.manual_seed(0)
    assert abs(-renyi.loss(vae.model, vae.guide, x, subsample=idx) - ours) > 1.0
    torch.manual_seed(0)
    full = -renyi.loss(vae.model, vae.guide, x)
    torch.manual_seed(0)
    assert full == pytest.approx(-est.loss(vae.model, vae.guide, x), rel=1e-9)


def test_path_only_estimators_refuse_non_reparameterized_sites():
    import pyro.distributions as dist

    def model():
        pyro.sample("k", dist.Poisson(3.0))

    def guide():
        pyro.sample("k", dist.Poisson(pyro.param("rate", torch.tensor(2.0), constraint=dist.constraints.positive)))

    for name in ("iwae", "stl", "dreg"):
        with pytest.raises(PyroVAEError, match="needs reparameterized guide sites; site 'k'"):
            estimator(name, 2).differentiable_loss(model, guide)

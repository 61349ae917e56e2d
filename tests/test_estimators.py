"""Estimators: registry, strictness, agreement with a hand-written ELBO, and Pyro ELBO behaviour."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import ELBO, SVI
from pyro.optim import Adam

from pyrovae import ESTIMATORS, VAE, PyroVAEError, estimator
from pyrovae.estimators import MissingKLError

from reference import handwritten_elbo


def test_registry_names_and_types():
    assert {"mc", "analytic", "auto", "iwae", "stl", "dreg"} <= set(ESTIMATORS.names())
    for name in ESTIMATORS:
        assert isinstance(estimator(name), ELBO)


def test_unknown_estimator_suggests_nearest():
    with pytest.raises(PyroVAEError, match="did you mean 'analytic'"):
        estimator("analitic")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_particle_count(bad):
    with pytest.raises(PyroVAEError, match="num_particles"):
        estimator("mc", bad)


def test_particles_are_vectorized():
    assert estimator("mc", 8).vectorize_particles and not estimator("mc", 1).vectorize_particles


def test_analytic_is_strict_and_names_the_pair():
    vae = VAE(6, 2, hidden=(5,), posterior="student-t")
    with pytest.raises(MissingKLError, match="site 'z' pairs posterior StudentT with prior StandardNormal"):
        estimator("analytic").loss(vae.model, vae.guide, torch.rand(3, 6).round())


def _small_vae():
    torch.manual_seed(1)
    return VAE(16, 3, hidden=(10,)).double(), torch.rand(6, 16, dtype=torch.float64).round()


@pytest.mark.parametrize("name, index", [("mc", 0), ("analytic", 1)])
def test_equals_handwritten_elbo_at_same_noise(float64, name, index):
    """Same seed, same noise: pyrovae's loss equals the hand-written PyTorch ELBO to 1e-6."""
    vae, x = _small_vae()
    torch.manual_seed(5)
    loss = estimator(name).differentiable_loss(vae.model, vae.guide, x)
    torch.manual_seed(5)
    eps = torch.randn(len(x), vae.z_dim)
    expected = handwritten_elbo(vae, x, eps)[index].sum()
    assert abs((-loss - expected).item()) < 1e-6


def test_mc_mean_equals_analytic_within_4_se(float64):
    """4,000 SGVB-A estimates average to the SGVB-B value (both unbiased for the same ELBO)."""
    vae, x = _small_vae()
    batches, per = 40, 100  # 40 vectorized calls of 100 particles = 4,000 estimates each

    def draws(name):
        est = estimator(name, per)
        return torch.tensor([-est.loss(vae.model, vae.guide, x) for _ in range(batches)])

    mc, an = draws("mc"), draws("analytic")
    se = math.sqrt(mc.var() / batches + an.var() / batches)
    assert abs(float(mc.mean() - an.mean())) < 4 * se
    # and the hand-written expectation with many fresh samples agrees too
    with torch.no_grad():
        hand_mc, hand_an = handwritten_elbo(vae, x, torch.randn(20000, len(x), vae.z_dim))
    assert abs(float(hand_mc.sum(-1).mean() - mc.mean())) < 4 * math.sqrt(
        hand_mc.sum(-1).var() / 20000 + mc.var() / batches)


@pytest.mark.parametrize("name", ["mc", "analytic", "auto", "iwae", "stl", "dreg"])
def test_loss_and_grads_behave_like_pyro(float64, name):
    """``loss`` returns a float equal to ``differentiable_loss``; ``loss_and_grads`` fills the same grads."""
    vae, x = _small_vae()
    est = estimator(name, 4, max_plate_nesting=1)  # no plate-nesting guess consuming the RNG first
    torch.manual_seed(2)
    value = est.differentiable_loss(vae.model, vae.guide, x)
    expected = torch.autograd.grad(value, list(vae.encoder.parameters()))
    torch.manual_seed(2)
    assert est.loss(vae.model, vae.guide, x) == pytest.approx(value.item(), abs=1e-9)
    torch.manual_seed(2)
    vae.zero_grad()
    with pyro.get_param_store().scope():
        assert est.loss_and_grads(vae.model, vae.guide, x) == pytest.approx(value.item(), abs=1e-9)
    for p, g in zip(vae.encoder.parameters(), expected):
        assert torch.allclose(p.grad, g, atol=1e-9)


#: (particles, tolerance). Plain IWAE's inference-network gradient loses signal-to-noise as K grows
#: (Rainforth et al. 2018), so its q converges more slowly; DReG repairs exactly that.
CONJUGATE = {"mc": (16, 0.02), "analytic": (16, 0.02), "auto": (16, 0.02), "stl": (16, 0.02),
             "iwae": (4, 0.05), "dreg": (4, 0.02)}


@pytest.mark.parametrize("name", list(CONJUGATE))
def test_recovers_conjugate_posterior_on_a_plain_pyro_model(float64, name):
    """Any Pyro model: theta ~ N(0,1), x_i ~ N(theta, 1); the exact posterior is N(sum x/(n+1), 1/(n+1))."""
    particles, tol = CONJUGATE[name]
    x = torch.randn(20) + 1.5

    def model(x):
        theta = pyro.sample("theta", dist.Normal(0.0, 1.0))
        with pyro.plate("obs", len(x)):
            pyro.sample("x", dist.Normal(theta, 1.0), obs=x)

    def guide(x):
        loc = pyro.param("loc", torch.tensor(0.0))
        scale = pyro.param("scale", torch.tensor(1.0), constraint=dist.constraints.positive)
        pyro.sample("theta", dist.Normal(loc, scale))

    svi = SVI(model, guide, Adam({"lr": 0.02}), loss=estimator(name, particles))
    iterates = []
    for step in range(2000):
        svi.step(x)
        if step >= 1500:  # average the last iterates: SGD noise, not bias, is what remains
            iterates.append((pyro.param("loc").item(), pyro.param("scale").item()))
    loc, scale = torch.tensor(iterates).mean(0).tolist()
    n = len(x)
    assert abs(loc - float(x.sum()) / (n + 1)) < tol
    assert abs(scale - 1 / math.sqrt(n + 1)) < tol


@pytest.mark.parametrize("name", ESTIMATORS.names())
def test_no_plate_nesting_announcement_at_info(name):
    """Pyro logs "Guessed max_plate_nesting" at INFO on every run without max_plate_nesting; ours say it at DEBUG."""
    import logging

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    log = logging.getLogger("pyro.infer.elbo")
    handler = Keep(level=logging.DEBUG)
    log.addHandler(handler)
    try:
        pyro.set_rng_seed(0)
        vae = VAE(12, 2, hidden=(8,))
        svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), loss=estimator(name, 3))
        with pyro.get_param_store().scope():
            svi.step(torch.rand(6, 12).round())
    finally:
        log.removeHandler(handler)
    guesses = [r for r in records if "max_plate_nesting" in r.getMessage()]
    assert guesses == [] or all(r.levelno < logging.INFO for r in guesses)
    assert log.level in (logging.NOTSET, logging.INFO)  # the level is restored

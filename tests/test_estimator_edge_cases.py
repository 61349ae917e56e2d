"""Edge cases where every estimator must behave like Pyro's ELBOs, or fail with one clear error.

Nothing to train, an empty program, a fully masked latent, ``vectorize_particles`` honoured,
and a model written for one draw that breaks under vectorized particles.
"""

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from pyrovae import ESTIMATORS, PyroVAEError, estimator
from pyrovae.estimators import MissingKLError

NAMES = ESTIMATORS.names()


def _pyro_elbo(name: str, **kwargs):
    return (TraceMeanField_ELBO if name in ("analytic", "auto") else Trace_ELBO)(**kwargs)


def _model(x):
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, 0.5), obs=x)


def _fixed_guide(x):
    with pyro.plate("data", len(x)):
        pyro.sample("z", dist.Normal(0.3, 0.8))


def _guide(x):
    loc = pyro.param("loc", torch.zeros(len(x)))
    with pyro.plate("data", len(x)):
        pyro.sample("z", dist.Normal(loc, 0.8))


def _observed_only(x):
    mu = pyro.param("mu", torch.tensor(0.2))
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(mu, 1.0), obs=x)


def _empty(*args):
    pass


X = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("model, guide", [(_model, _fixed_guide), (_model, poutine.block(_guide, hide_types=["param"]))],
                         ids=["fixed-guide", "blocked-params"])
def test_nothing_to_train_returns_the_loss_like_pyro(float64, name, model, guide):
    """No parameter site in the traces: the loss is returned and no gradient is accumulated."""
    pyro.param("loc", torch.zeros(3))  # exists, but the blocked guide hides it from the traces
    pyro.set_rng_seed(1)
    ours = estimator(name).loss_and_grads(model, guide, X)
    pyro.set_rng_seed(1)
    theirs = _pyro_elbo(name).loss_and_grads(model, guide, X)
    assert ours == pytest.approx(theirs, abs=1e-10)
    assert pyro.get_param_store().get_param("loc").unconstrained().grad is None


@pytest.mark.parametrize("name", NAMES)
def test_an_observed_only_model_trains_its_parameters(float64, name):
    """No latent at all: every bound is log p(x), and its gradient reaches the model's parameter."""
    est = estimator(name, 2)
    loss = est.loss_and_grads(_observed_only, _empty, X)
    assert loss == pytest.approx(-float(dist.Normal(0.2, 1.0).log_prob(X).sum()), abs=1e-10)
    grad = pyro.get_param_store().get_param("mu").unconstrained().grad
    assert float(grad) == pytest.approx(-float((X - 0.2).sum()), abs=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_an_empty_program_has_a_zero_bound(name):
    """An empty model and guide: 0, as Pyro's Trace_ELBO returns, from every entry point."""
    est = estimator(name)
    assert Trace_ELBO().loss(_empty, _empty) == 0.0
    assert est.loss(_empty, _empty) == 0.0
    assert est.loss_and_grads(_empty, _empty) == 0.0
    assert float(est.differentiable_loss(_empty, _empty)) == 0.0


@pytest.mark.parametrize("name", ["analytic", "auto"])
def test_a_fully_masked_latent_has_no_kl(float64, name):
    """``.mask(False)`` on both sides: torch's masked KL is the number 0; the site adds nothing."""
    def model(x):
        with pyro.plate("data", len(x)):
            pyro.sample("u", dist.Normal(0.0, 1.0).mask(False))
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, 0.5), obs=x)

    def guide(x):
        with pyro.plate("data", len(x)):
            pyro.sample("u", dist.Normal(1.0, 2.0).mask(False))
            pyro.sample("z", dist.Normal(0.3, 0.8))

    pyro.set_rng_seed(0)
    with_u = estimator(name).loss(model, guide, X)
    pyro.set_rng_seed(0)
    pyro.sample("burn", dist.Normal(torch.zeros(3), 1.0))  # u's draw, so z gets the same noise
    assert with_u == pytest.approx(estimator(name).loss(_model, _fixed_guide, X), abs=1e-10)


def test_analytic_names_a_one_sided_mask():
    """A latent masked in the guide only has no closed-form KL; the error says the mask is why."""
    def guide(x):
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(0.3, 0.8).mask(False))

    with pytest.raises(MissingKLError, match=r"posterior Normal\.mask\(False\) with prior Normal"):
        estimator("analytic").loss(_model, guide, X)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("vectorized", [True, False])
def test_vectorize_particles_is_honoured(float64, name, vectorized):
    """K = 3 particles: one batched run of the guide, or three runs of it, as asked."""
    runs = []

    def guide(x):
        runs.append(1)
        _guide(x)

    est = estimator(name, 3, vectorize_particles=vectorized, max_plate_nesting=1)
    assert est.vectorize_particles is vectorized
    est.loss(_model, guide, X)  # the first call also replays the guide once, to find coupled sites (memoized)
    runs.clear()
    est.loss(_model, guide, X)
    assert len(runs) == (1 if vectorized else 3)


def _regression_data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 2, generator=g), torch.randn(6, generator=g)


def _regression(X, y):
    """Bayesian linear regression written for one draw: ``X @ w`` with a latent ``w`` of shape (2,)."""
    w = pyro.sample("w", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    with pyro.plate("data", len(y)):
        pyro.sample("y", dist.Normal(X @ w, 0.5), obs=y)


def _regression_guide(X, y):
    loc = pyro.param("w_loc", torch.zeros(2))
    pyro.sample("w", dist.Normal(loc, 0.7).to_event(1))


@pytest.mark.parametrize("name", NAMES)
def test_a_model_broken_by_vectorized_particles_gets_a_clear_error(float64, name):
    X, y = _regression_data()
    with pytest.raises(PyroVAEError, match=r"model fails with 3 vectorized particles but runs with one draw: "
                                           r"the particles are dim -2 of every latent \(sampled before the "
                                           r"failure: 'w' \[3, 1, 2\]\).*vectorize_particles=False"):
        estimator(name, 3, max_plate_nesting=1).loss(_regression, _regression_guide, X, y)


@pytest.mark.parametrize("name", NAMES)
def test_the_same_model_without_vectorized_particles_equals_pyro(float64, name):
    """The way out the error names: ``vectorize_particles=False`` runs, and is Pyro's estimate."""
    X, y = _regression_data()
    pyro.set_rng_seed(2)
    ours = estimator(name, 3, vectorize_particles=False).loss(_regression, _regression_guide, X, y)
    if name in ("iwae", "dreg"):
        theirs = pyro.infer.RenyiELBO(alpha=0, num_particles=3)
    else:
        theirs = _pyro_elbo(name, num_particles=3)
    pyro.set_rng_seed(2)
    assert ours == pytest.approx(theirs.loss(_regression, _regression_guide, X, y), abs=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_an_error_unrelated_to_vectorization_passes_through(name):
    """A model that fails with one draw too keeps its own error."""
    def broken(x):
        _model(x)
        raise RuntimeError("the user's own bug")

    with pytest.raises(RuntimeError, match="the user's own bug") as info:
        estimator(name, 3, max_plate_nesting=1).loss(broken, _guide, X)
    assert not isinstance(info.value, PyroVAEError)

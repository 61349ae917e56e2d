"""Annealed importance sampling: exact on PPCA where importance sampling fails, right for every family."""

import math

import pyro
import pytest
import torch

import pyrovae
from pyrovae import FAMILIES, PyroVAEError, log_likelihood
from pyrovae.ais import SCHEDULES, Annealing, annealed_log_weights, linear_schedule, sigmoid_schedule
from pyrovae.importance import log_mean_exp

from conftest import exact_ppca_vae


def _shifted_and_narrow(vae):
    """The exact encoder made poor: means one to three posterior s.d. off, s.d. 40% too small."""
    with torch.no_grad():
        k = vae.z_dim
        vae.encoder.bias[:k] += 0.5
        vae.encoder.bias[k:] -= 1.0  # log sigma^2 - 1
    return vae


@pytest.fixture
def poor_proposal(float64):
    """``(ppca, x, vae, exact)``: 40 PPCA points, its exact decoder with a poor encoder, the exact mean log p(x)."""
    ppca = pyrovae.PPCA.random(10, 3, seed=0)
    x = ppca.sample(40, generator=torch.Generator().manual_seed(1))
    return ppca, x, _shifted_and_narrow(exact_ppca_vae(ppca)), float(ppca.log_prob(x).mean())


def test_schedules_run_from_0_to_1():
    for name in SCHEDULES:
        betas = SCHEDULES[name](50)
        assert betas.shape == (51,) and betas.dtype == torch.float64
        assert float(betas[0]) == 0.0 and float(betas[-1]) == pytest.approx(1.0, abs=1e-15)
        assert bool((betas.diff() > 0).all())
    sigmoid = sigmoid_schedule(100)
    assert sigmoid[1] - sigmoid[0] < linear_schedule(100)[1] / 5  # small steps at the ends ...
    assert sigmoid[51] - sigmoid[50] > linear_schedule(100)[1]  # ... large ones in the middle
    assert Annealing(steps=4).betas(reverse=True) == tuple(reversed(Annealing(steps=4).betas()))


def test_ais_is_exact_on_ppca_where_importance_sampling_is_not(poor_proposal):
    """Acceptance: 16 chains x 1000 steps within 0.05 nats; IS with K=16 a nat or more below; only IS flagged."""
    _, x, vae, exact = poor_proposal
    ais, ais_diag = log_likelihood(vae, x, method="ais", num_samples=16, ais_steps=1000, seed=0,
                                   return_diagnostics=True)
    is16, is_diag = log_likelihood(vae, x, num_samples=16, seed=0, return_diagnostics=True)
    assert abs(ais - exact) < 0.05
    assert is16 < exact - 1.0
    assert ais_diag.warning() is None and ais_diag.median_ess > 12  # nearly equal weights: 16 chains count
    assert "unreliable" in is_diag.warning() and is_diag.median_ess < 3
    # With enough samples for a Pareto tail (K >= 21), k-hat itself tells them apart.
    _, is_diag = log_likelihood(vae, x, num_samples=1000, seed=0, return_diagnostics=True)
    _, ais_diag = log_likelihood(vae, x, method="ais", num_samples=32, ais_steps=300, seed=0,
                                 return_diagnostics=True)
    assert is_diag.frac_khat_high > 0.5 and is_diag.warning() is not None
    assert ais_diag.frac_khat_high <= 0.05 and ais_diag.warning() is None


def test_ais_from_the_prior_also_converges(poor_proposal):
    _, x, vae, exact = poor_proposal
    ais = log_likelihood(vae, x[:10], method="ais", num_samples=16, seed=0,
                         annealing=Annealing(steps=500, start="prior"))
    assert abs(ais - float(pyrovae.PPCA.random(10, 3, seed=0).log_prob(x[:10]).mean())) < 0.1
    assert exact < 0  # the fixture's points are the same


@pytest.mark.parametrize("name", FAMILIES.names())
def test_transitions_keep_every_family_in_its_support_and_its_target(float64, name):
    """A decoder that ignores z makes the posterior the prior: the chains must end distributed as the prior
    (this fails without the log-Jacobian of the unconstrained coordinates) and log p(x) must be exact."""
    pyro.set_rng_seed(0)
    vae = pyrovae.VAE(8, 2, hidden=(16,), posterior=name).double()
    with torch.no_grad():
        vae.decoder[-1].weight.zero_()
        vae.encoder[-1].bias.add_(0.5)  # start from a q that is not the prior
    x = (torch.rand(1, 8, generator=torch.Generator().manual_seed(0)) < 0.4).double()
    torch.manual_seed(0)
    run = annealed_log_weights(vae, x, 1000, Annealing(steps=60, leapfrog_steps=2))
    assert bool(FAMILIES[name].support.check(run.z).all())
    with torch.no_grad():
        exact = float(vae.decode(run.z[:1, 0]).log_prob(x))
    assert float(log_mean_exp(run.log_weights)) == pytest.approx(exact, abs=0.05)
    weights = torch.softmax(run.log_weights[:, 0], 0)  # self-normalized importance weights of the chains
    ess = 1.0 / float((weights ** 2).sum())
    ours = torch.tanh(run.z[:, 0]).reshape(1000, -1)  # bounded statistics: every family has their moments
    drawn = torch.tanh(vae.prior().sample((200_000,))).reshape(200_000, -1)
    for power in (1, 2):
        stat, reference = ours ** power, (drawn ** power).mean(0)
        assert bool(((weights @ stat - reference).abs() < 5 * stat.std(0) / math.sqrt(ess)).all()), power
    assert 0.3 < float(run.accept_rate.mean()) < 1.0


def test_ais_estimates_are_seeded_and_leave_the_global_stream(poor_proposal):
    _, x, vae, _ = poor_proposal
    state = torch.get_rng_state()
    first = log_likelihood(vae, x[:5], method="ais", num_samples=3, ais_steps=20, seed=4)
    assert torch.equal(state, torch.get_rng_state())
    assert first == log_likelihood(vae, x[:5], method="ais", num_samples=3, ais_steps=20, seed=4)
    assert first != log_likelihood(vae, x[:5], method="ais", num_samples=3, ais_steps=20, seed=5)


def test_traced_and_plain_densities_agree_and_a_custom_model_is_traced(poor_proposal):
    from pyrovae.joint import LogJoint

    _, x, vae, _ = poor_proposal
    z = torch.randn(4, len(x), vae.z_dim, dtype=torch.float64)
    joint = LogJoint(vae, x, {})
    first = joint(z)
    assert joint.direct is True
    assert torch.allclose(joint(z), first, rtol=1e-12) and torch.allclose(joint.traced(z), first, rtol=1e-12)

    class Tempered(type(vae)):
        def model(self, x, y=None, subsample=None):  # a different density than prior x decoder
            with pyro.poutine.scale(scale=0.5):
                return super().model(x, y, subsample)

    vae.__class__ = Tempered
    custom = LogJoint(vae, x, {})
    assert torch.allclose(custom(z), 0.5 * first, rtol=1e-12) and custom.direct is False


def test_bad_settings_are_refused_with_one_line(poor_proposal):
    _, x, vae, _ = poor_proposal
    with pytest.raises(PyroVAEError, match="did you mean 'ais'"):
        log_likelihood(vae, x, method="aiss")
    with pytest.raises(PyroVAEError, match="ais_steps must be a positive integer"):
        log_likelihood(vae, x, method="ais", ais_steps=0)
    with pytest.raises(PyroVAEError, match="unknown AIS start 'posteror'; did you mean 'posterior'"):
        log_likelihood(vae, x, method="ais", annealing=Annealing(start="posteror"))
    with pytest.raises(PyroVAEError, match="target_accept must be"):
        Annealing(target_accept=-1.0).check()

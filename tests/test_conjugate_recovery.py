"""Conjugate recovery under plain ``pyro.infer.SVI`` for every estimator that applies.

Five conjugate models, each with a guide in the conjugate family, so the exact
posterior is known in closed form *and* lies in the guide family:

==================  ==============================  ===============  ================================
model               prior                           likelihood       exact posterior
==================  ==============================  ===============  ================================
normal-normal       mu ~ Normal(m0, s0)             Normal(mu, s)    Normal, precision 1/s0^2 + N/s^2
beta-bernoulli      p ~ Beta(a, b)                  Bernoulli(p)     Beta(a + sum x, b + N - sum x)
gamma-poisson       rate ~ Gamma(a, b)              Poisson(rate)    Gamma(a + sum x, b + N)
gamma-exponential   rate ~ Gamma(a, b)              Exponential(r)   Gamma(a + N, b + sum x)
lognormal-normal    mu ~ Normal(m0, s0)             LogNormal(mu, s) Normal, as above with log x
==================  ==============================  ===============  ================================

With q in the posterior's family, q = p(z|x) maximizes every registered
objective: the ELBO (its gap is KL(q || p(z|x)) = 0 there) and the
importance-weighted bound of any K (every weight equals p(x), so the bound
reaches log p(x), its upper limit). Every estimator (``ESTIMATORS.names()``,
so a newly registered one is covered automatically) therefore has to train the
guide onto the closed-form posterior with nothing but ``pyro.infer.SVI``,
``pyro.optim`` and ``loss=pyrovae.estimator(name, K)``.

The check is on the guide's mean and standard deviation, in units of the exact
posterior standard deviation: both families here have two parameters, so
matching mean and standard deviation pins the parameters too.
:func:`test_the_check_can_fail` shows that the tolerance catches a posterior
that is off by half a posterior standard deviation (a wrong prior), and a run
that stopped before converging.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Dict, Tuple

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.distributions import constraints
from pyro.infer import SVI
from torch.distributions import kl_divergence

from pyrovae import ESTIMATORS, estimator


@dataclass(frozen=True)
class Schedule:
    """How one estimator is trained and judged: K, steps, a decaying Adam learning rate, tolerances.

    The learning rate decays geometrically from ``lr`` to ``lr * final_lr``
    (``ClippedAdam``'s per-step ``lrd``), and the guide parameters are averaged
    over the last ``average`` fraction of the steps (Polyak averaging): what is
    left after convergence is SGD noise around the optimum, not bias, and the
    average cancels most of it. ``beta2`` is Adam's second-moment decay.

    The guide passes when its mean is within ``mean_tol`` posterior standard
    deviations of the exact mean and its standard deviation within a relative
    ``std_tol`` of the exact one.
    """

    particles: int = 4
    steps: int = 300
    lr: float = 0.2
    final_lr: float = 0.025
    average: float = 0.5
    # 0.9 rather than Adam's 0.999: DReG's gradient (like STL's) vanishes at the exact posterior,
    # shrinking by orders of magnitude on the way there, and a second-moment memory of ~1,000
    # steps of the early, large gradients stalls it (measured: DReG's guide std still 39 % off
    # after 500 steps with 0.999; exact after 300 with 0.9).
    beta2: float = 0.9
    mean_tol: float = 0.15
    std_tol: float = 0.12


#: Every estimator, including any registered later, is trained and judged with this. With it,
#: over training seeds 0-3 the SGVB estimators (mc, analytic, auto) stayed within 0.12
#: posterior std of the mean and 10 % of the std (their Monte-Carlo noise, averaged), and the
#: zero-variance-at-the-optimum estimators (stl, dreg) within 0.003 of both.
DEFAULT = Schedule()
#: Plain IWAE is the one exception, for a measured reason that is the estimator's, not a bug:
#: its trajectories equal Pyro's ``RenyiELBO(alpha=0)`` step for step, and its gradient equals
#: a hand-written IWAE gradient. Near the optimum the bound is flatter in q by about a factor
#: K (d bound / d log std at 1.15 x the posterior std: -0.32 for the ELBO, -0.12 for K = 2,
#: -0.06 for K = 4) while its gradient noise there is that of K score terms, so its
#: inference-network gradient has a low signal-to-noise ratio (Rainforth et al. 2018) and the
#: averaged iterate's variance *grows* with K. So: K = 2, the smallest K that is still an
#: importance-weighted bound; 1,000 steps; beta2 = 0.99, whose smoother step size shrinks the
#: upward bias of the std that the bound's asymmetry (flat on the wide side) gives noisy
#: iterates (normal-normal, seeds 0-4: +12 % on average with 0.9, +8 % with 0.99); and
#: tolerances of 0.3 posterior std and 25 %: over seeds 0-3 it stayed within 0.21 and 18 %,
#: and the averaged error shrinks only as 1/sqrt(steps), so the default tolerances would take
#: ~3-4x the steps. DReG, which repairs exactly this gradient, needs no exception.
OVERRIDES: Dict[str, Schedule] = {
    "iwae": Schedule(particles=2, steps=1000, lr=0.1, final_lr=0.05, average=0.6, beta2=0.99,
                     mean_tol=0.3, std_tol=0.25),
}


def schedule(name: str) -> Schedule:
    """The training schedule of estimator ``name``."""
    return OVERRIDES.get(name, DEFAULT)


@dataclass(frozen=True)
class Conjugate:
    """One conjugate model with its guide and its closed-form posterior.

    :param name: test id.
    :param prior: the latent's prior hyperparameters, e.g. ``(m0, s0)`` or ``(a, b)``.
    :param prior_dist: ``prior -> Distribution`` of the latent ``z``.
    :param likelihood: ``z -> Distribution`` of one observation (known constants built in).
    :param simulate: ``generator -> x``, the observed data (own generator: the data do not
        depend on the training seed or on how much of the global RNG anything else used).
    :param posterior: ``(prior, x) -> (mean, std)`` of the exact posterior.
    :param guide_dist: ``(p1, p2) -> Distribution``, the guide family in its two parameters.
    :param params: names and constraints of the two ``pyro.param`` of the guide.
    :param moments: ``(p1, p2) -> (mean, std)`` of the guide.
    :param init: ``prior -> (p1, p2)``: the guide starts *at the prior* (its mean and spread),
        knowing nothing of the data.
    """

    name: str
    prior: Tuple[float, float]
    prior_dist: Callable
    likelihood: Callable
    simulate: Callable
    posterior: Callable
    guide_dist: Callable
    params: Tuple[Tuple[str, object], Tuple[str, object]]
    moments: Callable
    init: Callable

    def model(self, x: torch.Tensor) -> None:
        """z ~ prior; x_i ~ likelihood(z) i.i.d., vectorized in ``pyro.plate("data", N)``."""
        z = pyro.sample("z", self.prior_dist(self.prior))
        with pyro.plate("data", len(x)):
            pyro.sample("x", self.likelihood(z), obs=x)

    def guide(self, x: torch.Tensor) -> None:
        """q(z) in the conjugate family, its two parameters ``pyro.param`` with constraints."""
        p1, p2 = self.init(self.prior)
        (n1, c1), (n2, c2) = self.params
        a = pyro.param(n1, torch.tensor(p1), constraint=c1)
        b = pyro.param(n2, torch.tensor(p2), constraint=c2)
        pyro.sample("z", self.guide_dist(a, b))


def _normal_posterior(prior, y, sigma):
    """Exact posterior (mean, std) of mu for mu ~ N(m0, s0), y_i ~ N(mu, sigma)."""
    m0, s0 = prior
    precision = 1 / s0**2 + len(y) / sigma**2
    return (m0 / s0**2 + float(y.sum()) / sigma**2) / precision, precision**-0.5


def _beta_moments(a, b):
    """(mean, std) of Beta(a, b)."""
    return a / (a + b), math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))


def _gamma_moments(a, b):
    """(mean, std) of Gamma(concentration a, rate b)."""
    return a / b, math.sqrt(a) / b


# Guide parameterizations. Normal: (loc, scale). Beta and Gamma: (mean, concentration),
# with Beta(m c, (1 - m) c) and Gamma(c, c / m). For the Gamma, (mean, shape) is
# Fisher-orthogonal; in (concentration, rate) the posterior sits on a long curved ridge
# alpha / beta = const along which Adam crawls (measured: the guide std still 30-100 % off
# after 1,000 steps for every estimator). Both are the same family, so the optimum is the
# same; only the optimization is better conditioned.
_NORMAL_PARAMS = (("loc", constraints.real), ("scale", constraints.positive))
_MEAN_CONC_PARAMS = (("mean", constraints.positive), ("concentration", constraints.positive))


def _normal_guide_init(prior):
    return prior  # (m0, s0): q starts equal to the prior


def _beta_guide_init(prior):
    a, b = prior
    return a / (a + b), a + b


def _gamma_guide_init(prior):
    a, b = prior
    return a / b, a


SIGMA_NORMAL, SIGMA_LOGNORMAL = 1.0, 0.5

CONJUGATES = [
    Conjugate(
        name="normal-normal",
        prior=(0.0, 1.0),
        prior_dist=lambda pr: dist.Normal(*pr),
        likelihood=lambda mu: dist.Normal(mu, SIGMA_NORMAL),
        simulate=lambda g: 1.5 + SIGMA_NORMAL * torch.randn(20, generator=g),
        posterior=lambda pr, x: _normal_posterior(pr, x, SIGMA_NORMAL),
        guide_dist=dist.Normal,
        params=_NORMAL_PARAMS,
        moments=lambda loc, scale: (loc, scale),
        init=_normal_guide_init,
    ),
    Conjugate(
        name="beta-bernoulli",
        prior=(2.0, 2.0),
        prior_dist=lambda pr: dist.Beta(*pr),
        likelihood=dist.Bernoulli,
        simulate=lambda g: (torch.rand(40, generator=g) < 0.3).to(torch.get_default_dtype()),
        posterior=lambda pr, x: _beta_moments(pr[0] + float(x.sum()), pr[1] + len(x) - float(x.sum())),
        guide_dist=lambda m, c: dist.Beta(m * c, (1 - m) * c),
        params=(("mean", constraints.unit_interval), ("concentration", constraints.positive)),
        moments=lambda m, c: (m, math.sqrt(m * (1 - m) / (c + 1))),
        init=_beta_guide_init,
    ),
    Conjugate(
        name="gamma-poisson",
        prior=(2.0, 1.0),
        prior_dist=lambda pr: dist.Gamma(*pr),
        likelihood=dist.Poisson,
        simulate=lambda g: torch.poisson(torch.full((20,), 2.0), generator=g),
        posterior=lambda pr, x: _gamma_moments(pr[0] + float(x.sum()), pr[1] + len(x)),
        guide_dist=lambda m, c: dist.Gamma(c, c / m),
        params=_MEAN_CONC_PARAMS,
        moments=lambda m, c: (m, m / math.sqrt(c)),
        init=_gamma_guide_init,
    ),
    Conjugate(
        name="gamma-exponential",
        prior=(2.0, 1.0),
        prior_dist=lambda pr: dist.Gamma(*pr),
        likelihood=dist.Exponential,
        simulate=lambda g: -torch.rand(20, generator=g).log() / 2.0,  # Exponential(rate 2) by inversion
        posterior=lambda pr, x: _gamma_moments(pr[0] + len(x), pr[1] + float(x.sum())),
        guide_dist=lambda m, c: dist.Gamma(c, c / m),
        params=_MEAN_CONC_PARAMS,
        moments=lambda m, c: (m, m / math.sqrt(c)),
        init=_gamma_guide_init,
    ),
    Conjugate(
        name="lognormal-normal",
        prior=(0.0, 1.0),
        prior_dist=lambda pr: dist.Normal(*pr),
        likelihood=lambda mu: dist.LogNormal(mu, SIGMA_LOGNORMAL),
        simulate=lambda g: (0.7 + SIGMA_LOGNORMAL * torch.randn(20, generator=g)).exp(),
        posterior=lambda pr, x: _normal_posterior(pr, x.log(), SIGMA_LOGNORMAL),  # log x_i ~ N(mu, s)
        guide_dist=dist.Normal,
        params=_NORMAL_PARAMS,
        moments=lambda loc, scale: (loc, scale),
        init=_normal_guide_init,
    ),
]
BY_NAME = {c.name: c for c in CONJUGATES}


@pytest.fixture
def one_thread():
    """Run torch single-threaded, restoring the thread count afterwards.

    The tensors here have a few dozen elements. On a loaded 2-core machine an
    OpenMP-parallel op on them waits for a busy core: measured,
    ``binary_cross_entropy_with_logits`` (Bernoulli's log-density) on a 4 x 40
    tensor took 8 ms with 2 threads and 11 us with one. Results do not depend on it.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def data(conj: Conjugate, seed: int = 0) -> torch.Tensor:
    """The observations of ``conj``, from their own generator (independent of the training RNG)."""
    return conj.simulate(torch.Generator().manual_seed(seed))


def train(conj: Conjugate, name: str, x: torch.Tensor, plan: Schedule, seed: int = 0) -> Tuple[float, float]:
    """Fit ``conj``'s guide with plain ``pyro.infer.SVI`` and ``pyrovae.estimator(name, K)``.

    Returns the guide's (mean, std) at the Polyak average of its parameters over
    the last ``plan.average`` of the steps.
    """
    pyro.set_rng_seed(seed)
    pyro.clear_param_store()
    optim = pyro.optim.ClippedAdam({"lr": plan.lr, "betas": (0.9, plan.beta2),
                                    "lrd": plan.final_lr ** (1 / plan.steps)})
    svi = SVI(conj.model, conj.guide, optim, loss=estimator(name, plan.particles))
    names = [n for n, _ in conj.params]
    start = int(plan.steps * (1 - plan.average))
    total = torch.zeros(2)
    for step in range(plan.steps):
        svi.step(x)
        if step >= start:
            total += torch.stack([pyro.param(n).detach() for n in names])
    p1, p2 = (total / (plan.steps - start)).tolist()
    return conj.moments(p1, p2)


def assert_recovers(q: Tuple[float, float], exact: Tuple[float, float], plan: Schedule,
                    what: str) -> Tuple[float, float]:
    """Assert the guide's (mean, std) ``q`` matches the ``exact`` posterior's, within ``plan``'s tolerances.

    The mean must lie within ``plan.mean_tol`` posterior standard deviations of
    the exact mean, and the std within a relative ``plan.std_tol`` of the exact
    std. Returns ``(mean error in posterior stds, relative std error)``.
    """
    (q_mean, q_std), (mean, std) = q, exact
    mean_tol, std_tol = plan.mean_tol, plan.std_tol
    mean_err, std_err = (q_mean - mean) / std, q_std / std - 1
    assert abs(mean_err) <= mean_tol and abs(std_err) <= std_tol, (
        f"{what}: guide mean {q_mean:.5f}, std {q_std:.5f}; exact posterior mean {mean:.5f}, "
        f"std {std:.5f}: mean off by {mean_err:+.3f} posterior std (tolerance {mean_tol}), "
        f"std off by {std_err:+.1%} (tolerance {std_tol:.0%})")
    return mean_err, std_err


@pytest.mark.parametrize("model", list(BY_NAME))
@pytest.mark.parametrize("name", ESTIMATORS.names())
def test_recovers_conjugate_posterior(float64, one_thread, name, model):
    """SVI with ``estimator(name, K)`` trains the conjugate guide onto the exact posterior."""
    conj = BY_NAME[model]
    x = data(conj)
    plan = schedule(name)
    q = train(conj, name, x, plan)  # every pair has a closed-form KL (tested below): analytic must run
    assert_recovers(q, conj.posterior(conj.prior, x), plan, f"{name} (K={plan.particles}) on {model}")


def test_every_guide_prior_pair_has_a_closed_form_kl(float64):
    """All five (guide, prior) pairs have a closed-form KL in torch, so ``analytic`` must run."""
    for conj in CONJUGATES:
        q = conj.guide_dist(*(torch.tensor(v) for v in conj.init(conj.prior)))
        assert torch.isfinite(kl_divergence(q, conj.prior_dist(conj.prior))).all(), conj.name


@pytest.mark.parametrize("mistake", ["wrong prior", "too short"])
def test_the_check_can_fail(float64, one_thread, mistake):
    """The same training and the same assertion reject a posterior that is slightly wrong.

    "wrong prior": train on the normal-normal model with the prior mean moved from 0 to 2.5,
    which moves the exact posterior mean by 2.5 / (1 + 20) = 0.55 posterior std (3.6x the
    default mean tolerance), leaving its std unchanged. The run itself is sound (it recovers
    the posterior of the model it was given), yet against the posterior under the right prior
    the check must fail. "too short": 10 steps of the default schedule leave the guide
    between its start at the prior and the posterior.
    """
    conj = BY_NAME["normal-normal"]
    x = data(conj)
    exact = conj.posterior(conj.prior, x)
    if mistake == "wrong prior":
        wrong = replace(conj, prior=(2.5, 1.0))
        shifted = wrong.posterior(wrong.prior, x)
        assert (shifted[0] - exact[0]) / exact[1] == pytest.approx(0.55, abs=0.01)
        q = train(wrong, "mc", x, DEFAULT)
        assert_recovers(q, shifted, DEFAULT, "mc on the shifted prior")
    else:
        q = train(conj, "mc", x, replace(DEFAULT, steps=10))
    with pytest.raises(AssertionError, match="posterior std"):
        assert_recovers(q, exact, DEFAULT, f"mc with a {mistake}")

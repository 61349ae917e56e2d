"""Every estimator on every kind of Pyro model: against Pyro's own ELBOs, exact answers and closed forms.

The models (``pyro_models.py``) cover the structures of Pyro's inference tests: no plate, one
plate, nested plates, plates at the same dim that are not nested, a subsampled plate, a
sequential plate, scalar and tensor ``poutine.scale``, ``poutine.mask`` and ``.mask()``, global
and local latents, observed sites and ``pyro.factor`` outside every plate. Each check runs for
every registered estimator, with one particle and with three, vectorized and not, in float64.
"""

import math

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import RenyiELBO, Trace_ELBO, TraceMeanField_ELBO

import pyro_models
from pyrovae import ESTIMATORS, PyroVAEError, estimator

NAMES = ESTIMATORS.names()
WEIGHTED = {"iwae", "dreg"}  # their bound is log 1/K sum_k w_k
MEAN_FIELD = {"analytic", "auto"}  # Pyro's counterpart is TraceMeanField_ELBO
PATH_ONLY = {"stl", "dreg"}  # gradients differ from Trace_ELBO's at the same draw (same expectation)
MODES = [(1, False), (3, True), (3, False)]  # (particles, vectorized)


@pytest.fixture(params=pyro_models.BUILDERS, ids=lambda b: b.__name__)
def kind(request, float64):
    return request.param()


@pytest.fixture(params=pyro_models.EXACT_BUILDERS, ids=lambda b: b.__name__)
def exact_kind(request, float64):
    """The kinds whose guide family holds the exact posterior."""
    return request.param()


def _pyro_counterpart(name: str, particles: int, vectorized: bool, nesting: int):
    """Pyro's ELBO computing the same objective at the same draw."""
    if name in WEIGHTED and particles > 1:
        return RenyiELBO(alpha=0, num_particles=particles, vectorize_particles=vectorized, max_plate_nesting=nesting)
    cls = TraceMeanField_ELBO if name in MEAN_FIELD else Trace_ELBO
    return cls(num_particles=particles, vectorize_particles=vectorized, max_plate_nesting=nesting)


def _create_params(kind, values=None):
    """Run the guide and model once so their parameters exist; optionally set some of them."""
    with poutine.block():
        trace = poutine.trace(kind.guide).get_trace(*kind.args)
        poutine.replay(kind.model, trace=trace)(*kind.args)
    for name, value in (values or {}).items():
        pyro.get_param_store()[name] = value


def _value_and_grads(loss, kind, seed=0):
    """``(-loss, {param: grad})`` of one ``loss_and_grads`` call at the draw of ``seed``."""
    store = pyro.get_param_store()
    for _, p in store.named_parameters():
        p.grad = None
    pyro.set_rng_seed(seed)
    value = -loss.loss_and_grads(kind.model, kind.guide, *kind.args)
    grads = {n: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for n, p in store.named_parameters()}
    return value, grads


def _assert_same(ours, theirs, grads=True):
    assert ours[0] == pytest.approx(theirs[0], abs=1e-8)
    if grads:
        for name in theirs[1]:
            assert torch.allclose(ours[1][name], theirs[1][name], atol=1e-8), name


@pytest.mark.parametrize("name", NAMES)
def test_one_particle_equals_pyros_elbo_at_the_same_draw(kind, name):
    """K = 1: the value (and, for the score-free estimators, the gradient) is Pyro's ELBO's."""
    _create_params(kind)
    ours = _value_and_grads(estimator(name, 1, max_plate_nesting=kind.nesting), kind)
    theirs = _value_and_grads(_pyro_counterpart(name, 1, False, kind.nesting), kind)
    _assert_same(ours, theirs, grads=name not in PATH_ONLY)


def test_dreg_with_one_particle_has_the_stl_gradient(kind):
    """At K = 1 the normalized weight is 1 and DReG's gradient is the sticking-the-landing one."""
    _create_params(kind)
    dreg = _value_and_grads(estimator("dreg", 1, max_plate_nesting=kind.nesting), kind)
    stl = _value_and_grads(estimator("stl", 1, max_plate_nesting=kind.nesting), kind)
    _assert_same(dreg, stl)


def _per_element_reference(kind, particles: int, vectorized: bool, seed=0) -> float:
    """The per-element IWAE bound from Pyro's own traces, for the one-plate kinds with local weights.

    ``sum_i c_i logmeanexp_k log w_ik + shared``, with ``log w_ik`` summed from Pyro's unscaled site
    densities, ``c_i`` the kind's declared outer scale, and the shared sites' scaled densities once.
    """
    elbo = Trace_ELBO(num_particles=particles, vectorize_particles=vectorized, max_plate_nesting=kind.nesting)
    pyro.set_rng_seed(seed)
    with torch.no_grad():
        traces = list(elbo._get_traces(kind.model, kind.guide, kind.args, {}))
        per_trace, shared = [], 0.0
        for model_trace, guide_trace in traces:
            lw = 0.0
            for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
                for name, site in trace.nodes.items():
                    if site["type"] != "sample":
                        continue
                    if name in kind.shared:
                        shared += sign * float(site["log_prob_sum"]) / particles  # once, not per particle
                    else:
                        lw = lw + sign * site["unscaled_log_prob"]
            per_trace.append(lw.reshape(-1, lw.shape[-1]))
        lw = torch.cat(per_trace)  # (K, M)
        return float((kind.outer * (lw.logsumexp(0) - math.log(particles))).sum()) + shared


@pytest.mark.parametrize("particles, vectorized", MODES[1:], ids=["vectorized", "sequential-particles"])
@pytest.mark.parametrize("name", NAMES)
def test_several_particles_equal_pyro_at_the_same_draw(kind, name, particles, vectorized):
    """K = 3: mc/stl are Trace_ELBO, analytic/auto TraceMeanField_ELBO; iwae/dreg are RenyiELBO(alpha=0)
    wherever it weights the same way, else the per-element bound computed from Pyro's traces."""
    _create_params(kind)
    est = estimator(name, particles, vectorize_particles=vectorized, max_plate_nesting=kind.nesting)
    ours = _value_and_grads(est, kind)
    if name in WEIGHTED and not kind.renyi:
        assert ours[0] == pytest.approx(_per_element_reference(kind, particles, vectorized), abs=1e-8)
        return
    theirs = _value_and_grads(_pyro_counterpart(name, particles, vectorized, kind.nesting), kind)
    _assert_same(ours, theirs, grads=name not in PATH_ONLY)


@pytest.mark.parametrize("name", sorted(WEIGHTED))
def test_weighting_is_reported(kind, name):
    """With K > 1 the estimator says whether its weights were per element or over the whole trace."""
    _create_params(kind)
    est = estimator(name, 3, max_plate_nesting=kind.nesting)
    est.loss(kind.model, kind.guide, *kind.args)
    assert est.weighting.kind == kind.weighting, str(est.weighting)
    assert est.weighting.shared == kind.shared


@pytest.mark.parametrize("particles, vectorized", MODES, ids=["one", "vectorized", "sequential-particles"])
@pytest.mark.parametrize("name", sorted(set(NAMES) - MEAN_FIELD))
def test_exact_posterior_gives_the_exact_bound_at_every_draw(exact_kind, name, particles, vectorized):
    """With q the exact posterior, log p(x, z) - log q(z) is the same for every z: each bound is exact."""
    kind = exact_kind
    found, exact = kind.exact()
    _create_params(kind, found)
    est = estimator(name, particles, vectorize_particles=vectorized, max_plate_nesting=kind.nesting)
    for seed in range(3):
        value, _ = _value_and_grads(est, kind, seed)
        assert value == pytest.approx(exact, abs=1e-8)


@pytest.mark.parametrize("name", sorted(MEAN_FIELD))
def test_exact_posterior_gives_the_exact_bound_in_expectation_for_the_closed_form_kl(exact_kind, name):
    """SGVB-B at the exact posterior: -KL + log p(x|z) varies with z, but its mean is log p(x)."""
    kind = exact_kind
    found, exact = kind.exact()
    _create_params(kind, found)
    est = estimator(name, 200, max_plate_nesting=kind.nesting)
    draws = torch.tensor([-est.loss(kind.model, kind.guide, *kind.args) for _ in range(20)])
    se = float(draws.std() / math.sqrt(len(draws)))
    assert abs(float(draws.mean()) - exact) <= 4 * se + 1e-9


@pytest.mark.parametrize("builder", [pyro_models.global_observation, pyro_models.factor],
                         ids=["observed", "factor"])
@pytest.mark.parametrize("particles, vectorized", MODES, ids=["one", "vectorized", "sequential-particles"])
@pytest.mark.parametrize("name", NAMES)
def test_a_parameter_of_a_global_site_gets_its_exact_gradient(float64, builder, name, particles, vectorized):
    """``mu`` enters only a site outside every plate: its gradient is that site's, counted once."""
    kind = builder()
    _create_params(kind)
    est = estimator(name, particles, vectorize_particles=vectorized, max_plate_nesting=kind.nesting)
    _, grads = _value_and_grads(est, kind)
    mu = pyro.param("mu").detach()
    assert float(grads["mu"]) == pytest.approx(float(kind.extra["mu_grad"](mu)), abs=1e-10)


def test_iwae_on_two_plates_at_one_dim_converges_to_the_joint_log_p(float64):
    """Two equal-size plates at the same dim, the prior as guide, K = 20,000: the joint log p(y),
    not the sum of per-element marginals (which pairing element i with element i would give)."""
    kind = pyro_models.non_nested_coupled()
    y = kind.args[0]
    joint = kind.log_p()
    marginals = float(dist.Normal(0.0, math.sqrt(pyro_models.SIGMA**2 + 2)).log_prob(y).sum())
    assert abs(joint - marginals) > 0.5  # the two answers are far apart, so the test can tell them apart
    est = estimator("iwae", 20_000, max_plate_nesting=1)
    values = [-est.loss(kind.model, kind.extra["prior_guide"], y) for _ in range(5)]
    assert est.weighting.kind == "joint"
    assert abs(sum(values) / len(values) - joint) < 0.1, (values, joint)


def _gradient_draws(name, kind, seeds, particles=3):
    est = estimator(name, particles, max_plate_nesting=kind.nesting)
    samples = [_value_and_grads(est, kind, seed)[1] for seed in seeds]
    return {n: torch.stack([s[n] for s in samples]) for n in samples[0]}


@pytest.mark.parametrize("ours, theirs", [("stl", "mc"), ("dreg", "iwae")])
def test_path_only_gradients_agree_in_expectation_with_global_latents(float64, ours, theirs):
    """On global + local latents (joint weights), STL ~ SGVB-A and DReG ~ IWAE in expectation (4 SE)."""
    kind = pyro_models.global_and_local()
    _create_params(kind)
    a, b = _gradient_draws(ours, kind, range(300)), _gradient_draws(theirs, kind, range(1000, 1300))
    for name in a:
        flat_a, flat_b = a[name].reshape(300, -1), b[name].reshape(300, -1)
        se = (flat_a.var(0) / len(flat_a) + flat_b.var(0) / len(flat_b)).sqrt()
        assert ((flat_a.mean(0) - flat_b.mean(0)).abs() <= 4 * se + 1e-12).all(), name


def test_log_weights_are_per_element_or_joint_and_refuse_sites_counted_once(float64):
    """``pyrovae.log_weights``: (K, M) for local latents, (K, 1) for a global latent, and an error
    where a site outside the plate has no per-element weight."""
    from pyrovae import log_weights

    for builder, shape in [(pyro_models.one_plate, (7, 5)), (pyro_models.global_and_local, (7, 1))]:
        kind = builder()
        _create_params(kind)
        assert log_weights(kind.model, kind.guide, *kind.args, num_particles=7).shape == shape
    kind = pyro_models.global_observation()
    _create_params(kind)
    with pytest.raises(PyroVAEError, match="site\\(s\\) 'g' lie outside plate 'data'"):
        log_weights(kind.model, kind.guide, *kind.args, num_particles=7)

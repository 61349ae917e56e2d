"""Evaluation against ground truth: the PPCA model's exact log p(x) and exact posterior."""

import math

import pytest
import torch

from pyrovae import elbo_terms, estimator, evaluate_elbo, log_likelihood, log_weights



def test_log_likelihood_matches_exact(ppca_setup):
    ppca, x, vae, exact = ppca_setup
    assert abs(log_likelihood(vae, x, num_samples=5000, seed=0) - exact) < 0.05


def test_every_mc_estimate_is_exact_at_the_true_posterior(ppca_setup):
    """At q = p(z|x), log p(x,z) - log q(z|x) = log p(x) for every z: zero variance."""
    ppca, x, vae, exact = ppca_setup
    with torch.no_grad():
        lw = log_weights(vae.model, vae.guide, x, num_particles=50)
    assert lw.shape == (50, len(x))
    assert float((lw - ppca.log_prob(x)).abs().max()) < 1e-6
    for seed in range(5):
        torch.manual_seed(seed)
        elbo = -estimator("mc", max_plate_nesting=1).loss(vae.model, vae.guide, x) / len(x)
        assert abs(elbo - exact) < 1e-6


def test_elbo_is_tight_at_the_true_posterior(ppca_setup):
    ppca, x, vae, exact = ppca_setup
    assert abs(evaluate_elbo(vae, x, "analytic", num_particles=100, seed=0) - exact) < 0.01
    terms = elbo_terms(vae, x, seed=0)
    assert terms["elbo"] == pytest.approx(terms["recon"] - terms["kl"])


def _perturb_encoder(vae):
    with torch.no_grad():
        k = vae.z_dim
        vae.encoder.bias[:k] += 0.4   # shifted ...
        vae.encoder.bias[k:] += 0.5   # ... and too wide, so importance weights still behave
    return vae


def test_elbo_below_exact_and_is_estimate_tightens(ppca_setup):
    ppca, x, vae, exact = ppca_setup
    _perturb_encoder(vae)
    elbo = evaluate_elbo(vae, x, "mc", num_particles=200, seed=0)
    assert elbo < exact - 0.1
    assert evaluate_elbo(vae, x, "analytic", num_particles=200, seed=0) == pytest.approx(elbo, abs=0.05)
    bounds = [log_likelihood(vae, x, num_samples=k, seed=0) for k in (1, 10, 100, 5000)]
    assert bounds[0] == pytest.approx(elbo, abs=0.1)  # K=1 is the ELBO in expectation
    assert all(a < b for a, b in zip(bounds, bounds[1:])), bounds
    assert bounds[-1] < exact + 0.01
    assert abs(bounds[-1] - exact) < 0.05


def test_log_likelihood_is_logmeanexp_of_log_weights(ppca_setup):
    ppca, x, vae, exact = ppca_setup
    _perturb_encoder(vae)
    torch.manual_seed(3)
    with torch.no_grad():
        lw = log_weights(vae.model, vae.guide, x[:20], num_particles=64)
    manual = float((lw.logsumexp(0) - math.log(64)).mean())
    assert log_likelihood(vae, x[:20], num_samples=64, seed=3) == pytest.approx(manual, abs=1e-10)


def test_log_weights_are_a_detached_measurement(ppca_setup):
    """Results carry no autograd graph, so ``float(...)`` and ``.numpy()`` work on them directly."""
    ppca, x, vae, exact = ppca_setup
    lw = log_weights(vae.model, vae.guide, x[:5], num_particles=4)
    assert lw.shape == (4, 5) and not lw.requires_grad
    assert lw.numpy().shape == (4, 5)


def test_chunking_keeps_the_estimate(ppca_setup):
    """Particle chunks (30 per chunk, a last one of 10) combine by logaddexp into the same estimate.

    A mildly perturbed posterior keeps the importance weights well behaved, so the Monte-Carlo
    noise is far below what a mis-weighted chunk (e.g. a wrong log K) would cause.
    """
    ppca, x, vae, exact = ppca_setup
    with torch.no_grad():
        vae.encoder.bias += 0.1
    full = log_likelihood(vae, x[:50], num_samples=4000, seed=3)
    chunked = log_likelihood(vae, x[:50], num_samples=4000, batch_size=7, seed=5, row_budget=7 * 30)
    assert abs(chunked - full) < 0.02  # seed-to-seed noise here is ~0.003 nats
    assert abs(full - exact) < 0.02


def test_seeded_evaluation_does_not_touch_the_global_stream(ppca_setup):
    ppca, x, vae, exact = ppca_setup
    torch.manual_seed(11)
    before = torch.get_rng_state()
    a = evaluate_elbo(vae, x, "mc", seed=4)
    assert torch.equal(before, torch.get_rng_state())
    assert evaluate_elbo(vae, x, "mc", seed=4) == a


def test_log_likelihood_diagnostics_follow_the_streamed_weights(ppca_setup, monkeypatch):
    """ESS, k-hat and the standard error from the chunked run equal those of every weight it drew."""
    import pyrovae.evaluate as evaluate
    from pyrovae.importance import ImportanceDiagnostics

    _, x, vae, _ = ppca_setup
    with torch.no_grad():
        vae.encoder.bias += 0.3  # no longer the exact posterior
    drawn, original = [], evaluate.log_weights

    def recording(*args, **kwargs):
        drawn.append(original(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(evaluate, "log_weights", recording)
    x = x[:60]
    value, diag = log_likelihood(vae, x, num_samples=300, batch_size=60, row_budget=60 * 70, seed=0,
                                 return_diagnostics=True)
    assert len(drawn) == 5  # 300 samples in chunks of 70, 70, 70, 70, 20
    expected = ImportanceDiagnostics.from_log_weights(torch.cat(drawn))
    assert value == log_likelihood(vae, x, num_samples=300, batch_size=60, row_budget=60 * 70, seed=0)
    assert diag.log_px == pytest.approx(value, abs=1e-9)
    for field in ("log_px", "log_px_se", "median_ess", "frac_khat_high", "max_khat"):
        assert getattr(diag, field) == pytest.approx(getattr(expected, field), rel=1e-9), field


def test_log_likelihood_diagnostics_flag_a_poor_proposal_and_pass_the_exact_one(ppca_setup):
    _, x, vae, exact = ppca_setup
    value, diag = log_likelihood(vae, x, num_samples=200, seed=0, return_diagnostics=True)
    assert diag.median_ess == pytest.approx(200, rel=1e-6) and diag.warning() is None  # equal weights
    with torch.no_grad():
        vae.encoder.bias[:3] += 3.0  # posterior means far off: a few weights dominate
    value, diag = log_likelihood(vae, x, num_samples=200, seed=0, return_diagnostics=True)
    assert value < exact - 1.0
    assert diag.frac_khat_high > 0.05 and "importance sampling is unreliable" in diag.warning()

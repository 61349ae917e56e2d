"""beta-weighted KL and the linear warm-up: recon + beta * KL under every ELBO estimator.

The weighted loss is beta-VAE's (Higgins et al. 2017); the warm-up anneals beta linearly from 0
(Bowman et al. 2016; Sonderby et al. 2016).
"""

import json
import math

import pytest
import torch

from pyrovae import VAE, PyroVAEError, RunConfig, evaluate_elbo, fit
from pyrovae.estimators import estimator
from pyrovae.evaluate import seeded
from pyrovae.klweight import linear_warmup


def _setup():
    g = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((30, 12), 0.3, dtype=torch.float64), generator=g)
    return VAE(12, 3, hidden=(8,)).double(), x


def _loss(vae, x, name, weight, seed=0, **kw):
    with seeded(seed), vae.kl_weighted(weight):
        return estimator(name, max_plate_nesting=1, **kw).loss(vae.model, vae.guide, x)


def _closed_form_kl(vae, x):
    """sum over rows of KL(q(z|x) || N(0, I)), Kingma & Welling 2013, appendix B."""
    with torch.no_grad():
        q = vae.encode(x).base_dist
        return float((0.5 * (q.loc ** 2 + q.scale ** 2 - torch.log(q.scale ** 2) - 1)).sum())


@pytest.mark.parametrize("name", ["analytic", "mc", "auto", "stl"])
def test_kl_part_is_linear_in_beta_at_fixed_noise(float64, name):
    """loss(beta) = -recon + beta * KL-part with the same noise: beta = 0.5 gives exactly half of beta = 1's."""
    vae, x = _setup()
    recon = _loss(vae, x, name, 0.0)
    half, full = _loss(vae, x, name, 0.5) - recon, _loss(vae, x, name, 1.0) - recon
    assert half == pytest.approx(0.5 * full, rel=1e-12, abs=1e-12)
    assert abs(full) > 1e-3


def test_analytic_kl_part_is_exactly_beta_times_the_closed_form(float64):
    """TraceMeanField_ELBO takes the KL's scale from the guide site: weighting both sites weights it exactly."""
    vae, x = _setup()
    kl = _closed_form_kl(vae, x)
    recon = _loss(vae, x, "analytic", 0.0)
    for beta in (0.5, 1.0, 2.0):
        assert _loss(vae, x, "analytic", beta) - recon == pytest.approx(beta * kl, rel=1e-10)


def test_mc_kl_part_is_beta_times_the_kl_in_expectation(float64):
    """Under mc the KL part log q - log p is sampled; its mean is beta * KL within 4 standard errors."""
    vae, x = _setup()
    kl = _closed_form_kl(vae, x)
    parts = torch.tensor([_loss(vae, x, "mc", 0.5, seed=s) - _loss(vae, x, "mc", 0.0, seed=s) for s in range(400)])
    se = float(parts.std()) / math.sqrt(len(parts))
    assert abs(float(parts.mean()) - 0.5 * kl) < 4 * se, (float(parts.mean()), 0.5 * kl, se)


def test_weight_scales_the_latent_site_of_model_and_guide_only(float64):
    import pyro.poutine as poutine

    vae, x = _setup()
    with vae.kl_weighted(0.25):
        guide = poutine.trace(vae.guide).get_trace(x)
        model = poutine.trace(poutine.replay(vae.model, trace=guide)).get_trace(x)
    assert guide.nodes["z"]["scale"] == 0.25 and model.nodes["z"]["scale"] == 0.25
    assert model.nodes["x"]["scale"] == 1.0
    assert vae.kl_weight == 1.0  # restored on exit


def test_linear_warmup():
    assert [linear_warmup(0.5, 4)(e) for e in range(6)] == [0.0, 0.125, 0.25, 0.375, 0.5, 0.5]
    assert [linear_warmup(2.0)(e) for e in range(3)] == [2.0, 2.0, 2.0]
    for beta, epochs in ((-1.0, 0), (math.nan, 0), (1.0, -2), (1.0, 1.5)):
        with pytest.raises(PyroVAEError):
            linear_warmup(beta, epochs)


def test_evaluation_reports_the_true_elbo_whatever_the_training_weight(float64):
    vae, x = _setup()
    true = evaluate_elbo(vae, x, "analytic", seed=0)
    vae.kl_weight = 0.3
    assert evaluate_elbo(vae, x, "analytic", seed=0) == true
    assert vae.kl_weight == 0.3
    assert true == pytest.approx(-_loss(vae, x, "analytic", 1.0) / len(x), rel=1e-12)


def _rows():
    return torch.bernoulli(torch.full((200, 16), 0.3), generator=torch.Generator().manual_seed(1))


def _fit(out=None, epochs=3, resume=False, callback=None, **kw):
    torch.manual_seed(3)
    x = _rows()
    vae = VAE(16, 2, hidden=(16,))
    return fit(vae, x[:160], x[160:], epochs=epochs, batch_size=40, seed=2, device="cpu", progress=False,
               out=out, resume=resume, callback=callback, figures=False, **kw)


def test_fit_follows_the_warmup_per_epoch_and_resets_the_weight():
    seen = []
    result = _fit(epochs=4, beta=0.5, kl_warmup_epochs=2, callback=lambda e, vae: seen.append(vae.kl_weight))
    assert seen == [0.0, 0.25, 0.5, 0.5]
    assert result.vae.kl_weight == 1.0
    assert result.summary["test_elbo"]["mc"] == evaluate_elbo(result.vae, _rows()[160:], "mc", seed=2)


def test_warmup_resumes_exactly(tmp_path):
    kw = dict(beta=0.5, kl_warmup_epochs=3, estimator="analytic")
    full = _fit(tmp_path / "full", epochs=4, **kw)
    _fit(tmp_path / "part", epochs=2, **kw)
    resumed = _fit(tmp_path / "part", epochs=4, resume=True, **kw)
    a, b = full.vae.state_dict(), resumed.vae.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    config = RunConfig.from_dict(json.loads((tmp_path / "full" / "config.json").read_text()))
    assert (config.beta, config.kl_warmup_epochs) == (0.5, 3)


@pytest.mark.parametrize("name", ["iwae", "dreg"])
def test_importance_weighted_bounds_refuse_beta(name):
    with pytest.raises(PyroVAEError, match="no separate KL term"):
        _fit(epochs=1, estimator=name, beta=0.5)


def test_config_round_trip_and_old_configs():
    config = RunConfig(beta=0.5, kl_warmup_epochs=3, conditional="prior", num_classes=10, tensorboard=True)
    assert RunConfig.from_dict(config.to_dict()) == config
    old = RunConfig().to_dict()
    for key in ("beta", "kl_warmup_epochs", "conditional", "num_classes", "tensorboard"):
        old.pop(key)
    assert RunConfig.from_dict(old) == RunConfig()
    with pytest.raises(PyroVAEError, match="beta must be"):
        RunConfig(beta=-0.1)

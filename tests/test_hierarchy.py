"""Several stochastic layers: the sites, the per-site KL routes (and why z1 is sampled), every estimator,
evaluation, resume and the CLI."""

import subprocess
import sys

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import RenyiELBO, Trace_ELBO, TraceMeanField_ELBO
from torch.distributions import kl_divergence

from pyrovae import VAE, PyroVAEError, estimator, evaluate_elbo, fit, log_likelihood
from pyrovae.config import RunConfig
from pyrovae.coupling import coupled_sites
from pyrovae.plots import PLOTS
from pyrovae.training.folders import RunFolder
from pyrovae.vae import vae_from_config
from test_estimator_conformance import _assert_same, _create_params, _value_and_grads
from test_train import _stop_at

X_DIM, SIZES, HIDDEN = 12, (4, 3), ((10,), (8,))


def _two_layer(**kw):
    return VAE(X_DIM, SIZES, HIDDEN, **kw)


def _data(rows=16, seed=1):
    return torch.bernoulli(torch.rand(rows, X_DIM, generator=torch.Generator().manual_seed(seed)))


def _sites(program, *args):
    trace = poutine.trace(program).get_trace(*args)
    return [n for n, s in trace.nodes.items() if s["type"] == "sample" and n != "data"]


# -- the model ---------------------------------------------------------------------------------


def test_an_int_z_dim_is_the_one_layer_model():
    """Same parameters, names and sites as always; a one-size tuple is the same model."""
    one, same = VAE(X_DIM, 4, (10,)), VAE(X_DIM, (4,), ((10,),))
    assert [n for n, _ in one.named_parameters()] == ["encoder.0.weight", "encoder.0.bias", "encoder.2.weight",
                                                      "encoder.2.bias", "decoder.0.weight", "decoder.0.bias",
                                                      "decoder.2.weight", "decoder.2.bias"]
    assert same.z_dim == 4 and same.hidden == (10,)
    assert _sites(one.guide, _data()) == ["z"] and _sites(one.model, _data()) == ["z", "x"]


def test_two_layers_are_a_top_down_model_and_a_bottom_up_guide(float64):
    vae, x = _two_layer(), _data()
    assert _sites(vae.guide, x) == ["z1", "z2"] and _sites(vae.model, x) == ["z2", "z1", "x"]
    trace = poutine.trace(vae.guide).get_trace(x)
    assert trace.nodes["z1"]["value"].shape == (16, 4) and trace.nodes["z2"]["value"].shape == (16, 3)
    assert vae.sample(5).z.shape == (5, 3) and vae.embed(x).shape == (16, 3)
    assert vae.reconstruct(x).shape == (16, X_DIM)


def test_one_hidden_list_serves_every_layer_and_a_wrong_count_is_refused():
    assert [m.in_features for m in _two_layer().layers.up[0][0] if hasattr(m, "in_features")] == [4, 8]
    assert [m.out_features for m in VAE(X_DIM, SIZES, (7,)).layers.down[0][0]
            if hasattr(m, "out_features")] == [7, VAE(X_DIM, 4).posterior_family.head_size(4)]
    with pytest.raises(PyroVAEError, match="3 lists for 2 stochastic layers"):
        VAE(X_DIM, SIZES, ((5,), (5,), (5,)))


def test_the_config_records_and_rebuilds_the_layers():
    config = RunConfig.from_dict(RunConfig(latent_dim=(4, 3), hidden=((10,), (8,))).to_dict())
    assert (config.latent_dim, config.hidden) == ((4, 3), ((10,), (8,)))
    vae = vae_from_config(config, X_DIM)
    assert (vae.z_dim, vae.hidden, vae.layers.names) == ((4, 3), ((10,), (8,)), ("z1", "z2"))


# -- which KLs have a valid closed form -----------------------------------------------------------


def _user_model(x):
    """A plain Pyro model with the same structure: p(z2) p(z1|z2) p(x|z1)."""
    with pyro.plate("data", x.shape[0]):
        z2 = pyro.sample("z2", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        z1 = pyro.sample("z1", dist.Normal(1.5 * z2, 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z1, 1.0).to_event(1), obs=x)


def _user_guide(x):
    """Its bottom-up guide q(z1|x) q(z2|z1): z2 is computed from z1."""
    with pyro.plate("data", x.shape[0]):
        z1 = pyro.sample("z1", dist.Normal(0.5 * x, 1.2).to_event(1))
        pyro.sample("z2", dist.Normal(0.8 * z1, 0.7).to_event(1))


def _user_x(rows=400):
    return torch.randn(rows, 2, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("program", ["vae", "user"])
def test_auto_samples_z1_and_takes_the_closed_form_at_the_top(float64, program):
    if program == "vae":
        vae, x = _two_layer(), _data()
        model, guide = vae.model, vae.guide
    else:
        model, guide, x = _user_model, _user_guide, _user_x()
    est = estimator("auto", 1, max_plate_nesting=1)
    est.loss(model, guide, x)
    assert est.kl_routes == {"z2": "analytic", "z1": "sampled"}
    assert coupled_sites(model, guide, poutine.trace(guide).get_trace(x), x) == {"z1"}
    with pytest.raises(PyroVAEError, match="site 'z1': its prior reads guide samples drawn from 'z1' itself"):
        estimator("analytic", 1, max_plate_nesting=1).loss(model, guide, x)


def test_one_layer_sites_keep_their_closed_form(float64):
    vae, x = VAE(X_DIM, 4, (10,)), _data()
    est = estimator("analytic", 1, max_plate_nesting=1)
    est.loss(vae.model, vae.guide, x)
    assert est.kl_routes == {"z": "analytic"}


def _mean_and_se(loss, model, guide, x, repeats=40):
    values = torch.tensor([-loss.loss(model, guide, x) for _ in range(repeats)])
    return float(values.mean()), float(values.std() / repeats ** 0.5)


@pytest.mark.parametrize("program", ["vae", "user"])
def test_auto_is_unbiased_where_the_pair_only_rule_is_not(float64, program):
    """E[auto] = E[mc] within 4 SE; Pyro's TraceMeanField_ELBO (closed form at z1 too) is off by many SE."""
    if program == "vae":
        vae, x = _two_layer(), _data(400)
        model, guide = vae.model, vae.guide
    else:
        model, guide, x = _user_model, _user_guide, _user_x()
    mc = _mean_and_se(estimator("mc", 1, max_plate_nesting=1), model, guide, x)
    auto = _mean_and_se(estimator("auto", 1, max_plate_nesting=1), model, guide, x)
    assert abs(auto[0] - mc[0]) < 4 * (mc[1] ** 2 + auto[1] ** 2) ** 0.5
    if program == "user":  # the dependence of p(z1|z2) on z1 is large here: the closed form is biased
        with pytest.warns(UserWarning, match="mean field restriction"):  # all that Pyro says about it
            pair_only = _mean_and_se(TraceMeanField_ELBO(max_plate_nesting=1), model, guide, x)
        assert abs(pair_only[0] - mc[0]) > 10 * (mc[1] ** 2 + pair_only[1] ** 2) ** 0.5


def test_the_conditional_closed_form_is_the_monte_carlo_kl(float64):
    """KL(q(z1|x) || p(z1|z2)) at a fixed z2 equals a 20,000-draw mean of log q - log p within 4 SE."""
    vae, x = _two_layer(), _data(1)
    with torch.no_grad():
        q, p = vae.encode(x), vae.layers.down[0](torch.tensor([[0.3, -1.0, 0.5]]))
        z = q.sample((20000,))
        draws = q.log_prob(z) - p.log_prob(z)
        exact = kl_divergence(q, p)
    assert abs(float(exact - draws.mean())) < 4 * float(draws.std() / 20000 ** 0.5)


# -- every estimator trains it ---------------------------------------------------------------------


class _Program:
    """The two-layer VAE as the ``kind`` the conformance helpers take."""

    def __init__(self):
        self.vae, x = _two_layer(), _data()
        self.model, self.guide, self.args = self.vae.model, self.vae.guide, (x,)
        _create_params(self)


@pytest.mark.parametrize("name, particles, pyros, grads", [
    ("mc", 1, Trace_ELBO, True), ("stl", 1, Trace_ELBO, False),
    ("iwae", 3, RenyiELBO, True), ("dreg", 3, RenyiELBO, False)])
def test_estimators_equal_pyros_elbo_at_the_same_draw(float64, name, particles, pyros, grads):
    kind = _Program()
    theirs_loss = (RenyiELBO(alpha=0, num_particles=particles, vectorize_particles=True, max_plate_nesting=1)
                   if pyros is RenyiELBO else Trace_ELBO(max_plate_nesting=1))
    ours = _value_and_grads(estimator(name, particles, max_plate_nesting=1), kind)
    _assert_same(ours, _value_and_grads(theirs_loss, kind), grads=grads)


@pytest.mark.parametrize("name", ["auto", "iwae"])
def test_training_improves_the_elbo(float64, name):
    vae, x = _two_layer(), _data(64)
    before = evaluate_elbo(vae, x, seed=0, num_particles=20)
    svi = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 0.02}),
                         estimator(name, 3 if name == "iwae" else 1, max_plate_nesting=1))
    for _ in range(30):
        assert torch.isfinite(torch.tensor(svi.step(x)))
    assert evaluate_elbo(vae, x, seed=0, num_particles=20) > before + 0.5


# -- evaluation, resume, the command line ------------------------------------------------------------


def test_importance_sampling_bounds_the_elbo(float64):
    vae, x = _two_layer(), _data(20)
    elbo = evaluate_elbo(vae, x, seed=0, num_particles=50)
    log_px = log_likelihood(vae, x, num_samples=500, seed=0)
    assert elbo < log_px < 0


def _run(out, resume=False):
    torch.manual_seed(123)
    x = torch.rand(120, X_DIM, generator=torch.Generator().manual_seed(1))
    return fit(_two_layer(), x, x[:20].round(), epochs=2, batch_size=20, seed=7, dynamic_binarization=True,
               device="cpu", progress=False, out=out, resume=resume, figures=False, checkpoint_every=4,
               estimator="auto")


def test_resume_from_a_mid_run_checkpoint_equals_the_uninterrupted_run(tmp_path, monkeypatch):
    full = _run(tmp_path / "full")
    _stop_at(monkeypatch, {9})
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "part")
    assert RunFolder(tmp_path / "part").load_checkpoint()["step"] == 8 - 6
    monkeypatch.undo()
    resumed = _run(tmp_path / "part", resume=True)
    a, b = full.vae.state_dict(), resumed.vae.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert full.summary["kl_routes"] == {"z2": "analytic", "z1": "sampled"}


def test_cli_trains_two_layers_and_draws_every_figure(tmp_path):
    run = tmp_path / "run"
    cli = [sys.executable, "-m", "pyrovae"]
    res = subprocess.run([*cli, "train", "--epochs", "1", "--batch-size", "500", "--latent-dim", "6,2",
                          "--hidden", "16/8", "--estimator", "auto", "--no-progress", "--device", "cpu",
                          "--out", str(run)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert {p.stem for p in run.glob("*.png")} == set(PLOTS.names())  # the manifold of the 2-D top layer too
    (run / "manifold.png").unlink()
    res = subprocess.run([*cli, "plot", str(run)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert (run / "manifold.png").is_file()

"""The amortized IAF (Kingma et al. 2016) against the change of variables, and old ``iaf`` runs."""

import json

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrovae import FAMILIES, VAE, RunConfig, fit, load_dataset, load_run
from pyrovae.families import AmortizedFlowFamily, FlowFamily


def _head(name="iaf", z_dim=3):
    return FAMILIES[name].posterior_head(z_dim), FAMILIES[name].head_size(z_dim)


def test_iaf_is_amortized_and_iaf_global_is_the_old_flow():
    assert type(FAMILIES["iaf"]) is AmortizedFlowFamily and type(FAMILIES["iaf-global"]) is FlowFamily
    # The head grows by the context h (2 z_dim) over the base Normal's [mu | log sigma^2].
    assert FAMILIES["iaf"].head_size(3) == 2 * 3 + 2 * 3 and FAMILIES["iaf-global"].head_size(3) == 2 * 3


def test_log_density_is_the_change_of_variables(float64):
    """log q(z_T) = log N(z_0; mu, sigma) - sum_t sum_i log sigma_t,i (Kingma et al. 2016), by hand."""
    head, size = _head()
    raw = torch.randn(5, size)
    base_raw, h = raw.split(head.sizes, dim=-1)
    base = FAMILIES["normal"].from_raw(base_raw)
    z0 = base.sample()
    z, log_det = z0, 0.0
    for layer in head.transforms:  # z_t = mu_t + sigma_t * z_{t-1}, mu_t and sigma_t from (z_{t-1}, h)
        mu, log_sigma = layer.nn(z, context=h)
        z, log_det = mu + log_sigma.exp() * z, log_det + log_sigma.sum(-1)
    expected = base.log_prob(z0) - log_det
    q = head(raw)  # scores z by inverting the layers (z was not drawn by q)
    torch.testing.assert_close(q.log_prob(z), expected, rtol=1e-10, atol=1e-10)
    pyro_q = dist.TransformedDistribution(base, [t.condition(h) for t in head.transforms])
    torch.testing.assert_close(pyro_q.log_prob(z), expected, rtol=1e-10, atol=1e-10)


def test_a_drawn_value_is_scored_exactly(float64):
    head, size = _head()
    q = head(torch.randn(4, size))
    z = q.rsample()
    torch.testing.assert_close(q.log_prob(z), q.log_prob(z.clone()), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name, amortized", [("iaf", True), ("iaf-global", False)])
def test_the_context_changes_the_flow_and_not_only_its_base(float64, name, amortized):
    """Two rows with the same base N(mu, sigma) but different encoder outputs: different flows for ``iaf``."""
    head, size = _head(name)
    base = torch.randn(1, FAMILIES["normal"].head_size(3)).expand(2, -1)
    raw = torch.cat([base, torch.randn(2, size - base.shape[-1])], dim=-1)
    q = head(raw)
    z = torch.randn(3).expand(2, 3)
    log_q = q.log_prob(z)
    assert (not torch.allclose(log_q[0], log_q[1])) == amortized
    assert torch.equal(q.base_dist.log_prob(z)[0], q.base_dist.log_prob(z)[1])  # the same base


def _old_iaf_run(out):
    """A run folder as the code before the amortized IAF wrote it: ``iaf`` was today's ``iaf-global``."""
    data = load_dataset("synthetic", binarize="none", seed=0)
    config = RunConfig(dataset="synthetic", likelihood="normal", binarize="none", latent_dim=2, hidden=(8,),
                       posterior="iaf-global", epochs=1, device="cpu")
    pyro.set_rng_seed(0)
    vae = VAE(data.x_dim, 2, (8,), posterior="iaf-global", likelihood="normal")
    fit(vae, data.train[:100], epochs=1, device="cpu", progress=False, out=out, config=config, figures=False)
    stored = json.loads((out / "config.json").read_text())
    del stored["arch"]  # the key the old code did not write
    stored["posterior"] = "iaf"
    (out / "config.json").write_text(json.dumps(stored))
    return vae


def test_an_old_iaf_run_loads_as_iaf_global(tmp_path):
    trained = _old_iaf_run(tmp_path)
    vae, config, _, _ = load_run(tmp_path)
    assert config.posterior == "iaf-global" and vae.names["posterior"] == "iaf-global"
    for key, value in trained.state_dict().items():
        assert torch.equal(vae.state_dict()[key], value), key
    new = {**json.loads((tmp_path / "config.json").read_text()), "arch": "mlp"}
    assert RunConfig.from_dict(new).posterior == "iaf"  # a config with arch is from today's code

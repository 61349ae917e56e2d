"""The VampPrior (Tomczak & Welling 2018): its density, its training signal, its KL route, its refusals."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrovae import VAE, PyroVAEError
from pyrovae.estimators import estimator
from pyrovae.families import PRIORS, EncoderView, VampPrior, closed_form_table
from pyrovae.families.mixture import shared_normal_components
from pyrovae.families.vamp import DEFAULT_PSEUDO_INPUTS


def _vae(posterior="normal"):
    return VAE(6, 2, (8,), posterior=posterior, prior="vamp").double()


def test_vamp_is_registered_with_500_pseudo_inputs():
    assert "vamp" in PRIORS and PRIORS["vamp"].uses_encoder
    assert _vae().prior.pseudo_inputs.shape == (DEFAULT_PSEUDO_INPUTS, 6) == (500, 6)


def test_log_density_is_the_mean_of_the_pseudo_input_posteriors(float64):
    """log p(z) = logsumexp_k log N(z; mu(u_k), sigma(u_k)^2) - log K (eq. 9), by hand."""
    vae = _vae()
    u = vae.prior.pseudo_inputs
    loc, log_var = vae.encoder(u).chunk(2, dim=-1)  # the normal family's head: [mu | log sigma^2]
    z = torch.randn(5, 2)
    d = z[:, None, :] - loc
    log_q = (-0.5 * d.pow(2) / log_var.exp() - 0.5 * log_var - 0.5 * math.log(2 * math.pi)).sum(-1)
    expected = torch.logsumexp(log_q, dim=-1) - math.log(len(u))
    torch.testing.assert_close(vae.prior().log_prob(z), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("narrow", [False, True])
def test_matrix_product_log_density_is_pyros_mixture_density(float64, narrow):
    """NormalMixture's log-density and its gradients (points, pseudo-inputs, encoder) equal Pyro's
    MixtureSameFamily broadcast to 1e-10, with components as narrow as sigma = 1e-3 and points
    far from them; in float32 it is within four float32 epsilons of the float64 density."""
    torch.manual_seed(3)
    vae = VAE(6, 3, (8,), prior="vamp").double()
    if narrow:  # log sigma^2 around -14: sigma near 1e-3, precisions near 1e6
        vae.encoder[-1].bias.data[3:] -= 14.0
    z = (4 * torch.randn(2, 7, 3)).requires_grad_()
    prior = vae.prior()
    assert type(prior).__name__ == "NormalMixture"
    assert (prior.component_distribution.base_dist.scale.max() < 0.01) == narrow
    assert shared_normal_components(prior) is not None
    reference = dist.MixtureSameFamily(prior.mixture_distribution, prior.component_distribution)
    got, expected = prior.log_prob(z), reference.log_prob(z)
    assert got.shape == expected.shape == (2, 7)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-10)
    # Under a plate of 7 rows the mixture is expanded (stride 0), as in training and evaluation.
    expanded = prior.expand(torch.Size([7]))
    assert type(expanded).__name__ == "NormalMixture" and expanded.batch_shape == (7,)
    assert shared_normal_components(expanded) is not None  # the matrix-product path, not Pyro's
    torch.testing.assert_close(expanded.log_prob(z), expected, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(expanded.log_prob(z[0, 0]), expected[0, 0].expand(7), rtol=1e-12, atol=1e-10)
    wrt = [z, vae.prior.pseudo_inputs, *vae.encoder.parameters()]
    for a, b in zip(torch.autograd.grad(got.sum(), wrt, retain_graph=True), torch.autograd.grad(expected.sum(), wrt)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9 * (1 + b.abs().max().item()))
    # float32: within float32 rounding of the float64 density of the same (float32) components.
    single = vae.float().prior()
    z32 = z.detach().float()
    base = single.component_distribution.base_dist
    truth = dist.MixtureSameFamily(dist.Categorical(logits=single.mixture_distribution.logits.double()),
                                   dist.Independent(dist.Normal(base.loc.double(), base.scale.double()), 1))
    truth = truth.log_prob(z32.double())
    ours = single.log_prob(z32)
    assert ours.dtype == torch.float32
    assert (ours.double() - truth).abs().max() <= 4 * torch.finfo(torch.float32).eps * truth.abs().max()


def test_log_density_of_a_flow_posterior_mixture(float64):
    """With the amortized IAF each component is a flow; the mixture is their mean density."""
    vae = _vae("iaf")
    vae.prior.pseudo_inputs.data = vae.prior.pseudo_inputs.data[:4]
    z = torch.randn(3, 2)
    per_component = torch.stack([vae.encode(u[None]).log_prob(z) for u in vae.prior.pseudo_inputs], dim=-1)
    expected = torch.logsumexp(per_component, dim=-1) - math.log(4)
    torch.testing.assert_close(vae.prior().log_prob(z), expected, rtol=1e-10, atol=1e-10)


def test_gradients_reach_the_pseudo_inputs_and_the_encoder_is_registered_once(float64):
    vae, x = _vae(), torch.rand(10, 6).round()
    loss = estimator("mc").differentiable_loss(vae.model, vae.guide, x)
    loss.backward()
    assert vae.prior.pseudo_inputs.grad.abs().sum() > 0
    params = list(vae.parameters())
    assert len(params) == len({id(p) for p in params})
    # The prior's own parameters are the pseudo-inputs alone: the encoder's weights stay "encoder".
    assert [k for k in pyro.get_param_store().keys() if k.startswith("prior$$$")] == ["prior$$$pseudo_inputs"]


def test_auto_samples_its_kl_and_analytic_refuses(float64):
    vae, x = _vae(), torch.rand(10, 6).round()
    auto = estimator("auto")
    assert torch.isfinite(auto.differentiable_loss(vae.model, vae.guide, x))
    assert auto.kl_routes == {"z": "sampled"}
    with pytest.raises(PyroVAEError, match="with prior NormalMixture, which has none; use 'auto' or 'mc'"):
        estimator("analytic").differentiable_loss(vae.model, vae.guide, x)
    assert all(v == "-" for (_, p), v in closed_form_table().items() if p == "vamp")  # every family mixes


def test_samples_come_from_the_mixture():
    generated = VAE(6, 2, (8,), prior="vamp").sample(7)
    assert generated.z.shape == (7, 2) and generated.x.shape == (7, 6)


class _Unmixable(torch.nn.Module):
    """A posterior head whose distribution has no batch of rows to mix (its rows are one event)."""

    def forward(self, raw):
        return dist.Normal(raw, 1.0).to_event(2)


def test_refuses_a_posterior_that_cannot_be_mixed():
    with pytest.raises(PyroVAEError, match="cannot be mixed"):
        VampPrior(EncoderView(6, lambda u: None, _Unmixable(), 2))


def test_refuses_an_encoder_that_reads_labels():
    with pytest.raises(PyroVAEError, match="pseudo-inputs have no class labels"):
        VAE(6, 2, (8,), prior="vamp", conditional="full", num_classes=3)

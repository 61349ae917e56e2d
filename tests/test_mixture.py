"""``NormalMixture``: the matrix-product density of both mixture priors (``mog`` and the VampPrior)."""

import pyro.distributions as dist
import pytest
import torch

from pyrovae import VAE
from pyrovae.families import NormalMixture
from pyrovae.families.mixture import shared_normal_components


@pytest.mark.parametrize("rows", [None, 7])
def test_mog_prior_density_and_gradients_are_pyros(float64, rows):
    """The ``mog`` prior's log-density and its gradients (points, weights, means, scales) equal
    Pyro's MixtureSameFamily broadcast to 1e-10, also expanded under a plate of 7 rows."""
    torch.manual_seed(0)
    vae = VAE(6, 3, (8,), prior="mog").double()
    prior = vae.prior  # the MixturePrior module; calling it builds the mixture
    with torch.no_grad():  # components of different widths and weights, some narrow
        prior.raw_scale.normal_(0.0, 2.0)
        prior.logits.normal_()
    mixture = vae.prior()
    assert isinstance(mixture, NormalMixture)
    z = (3 * torch.randn(2, 7, 3)).requires_grad_()
    reference = dist.MixtureSameFamily(mixture.mixture_distribution, mixture.component_distribution)
    if rows is not None:
        mixture = mixture.expand(torch.Size([rows]))
        assert isinstance(mixture, NormalMixture)
    assert shared_normal_components(mixture) is not None  # the matrix product, not Pyro's broadcast
    got, expected = mixture.log_prob(z), reference.log_prob(z)
    assert got.shape == expected.shape == (2, 7)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-10)
    wrt = [z, *prior.parameters()]
    for a, b in zip(torch.autograd.grad(got.sum(), wrt, retain_graph=True), torch.autograd.grad(expected.sum(), wrt)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9 * (1 + b.abs().max().item()))


def test_other_components_use_pyros_density(float64):
    """Components that are not diagonal Normals (here Laplace) take Pyro's own ``log_prob``."""
    torch.manual_seed(1)
    components = dist.Laplace(torch.randn(4, 2), torch.rand(4, 2) + 0.5).to_event(1)
    weights = dist.Categorical(logits=torch.randn(4))
    mixture = NormalMixture(weights, components)
    assert shared_normal_components(mixture) is None
    z = torch.randn(5, 2)
    torch.testing.assert_close(mixture.log_prob(z), dist.MixtureSameFamily(weights, components).log_prob(z),
                               rtol=0, atol=0)

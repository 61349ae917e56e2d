"""One posterior point summary everywhere: the latent figure, the kl figure and active_units agree."""

import matplotlib.image
import pytest
import torch
import pyro.distributions as dist

from pyrovae import FAMILIES, VAE, PyroVAEError, active_units, plot
from pyrovae.evaluate import seeded
from pyrovae.plots import latent_codes
from pyrovae.summaries import posterior_point


def test_the_point_is_the_mean_where_it_exists_and_the_median_elsewhere(float64):
    loc = torch.tensor([0.5, -1.0])
    assert torch.equal(posterior_point(dist.Normal(loc, 2.0).to_event(1)), loc)
    assert torch.equal(posterior_point(dist.Cauchy(loc, 2.0).to_event(1)), loc)  # no mean; median = loc exactly
    heavy = dist.StudentT(0.5, loc, 1.0).to_event(1)  # no mean, no inverse CDF: 20,000 samples' median
    assert torch.allclose(posterior_point(heavy, draws=20_000), loc, atol=0.05)


@pytest.mark.parametrize("family", FAMILIES.names())
def test_latent_codes_kl_figure_and_active_units_agree_for_every_family(tmp_path, family):
    torch.manual_seed(0)
    vae = VAE(12, 3, hidden=(10,), posterior=family)
    x = torch.rand(40, 12).round()
    count, activity = active_units(vae, x, threshold=0.0)
    assert torch.isfinite(activity).all() and count == 3, activity  # a Cauchy posterior used to give NaN
    with seeded(0):
        codes = latent_codes(vae, x)
    assert torch.allclose(codes.var(0), activity, rtol=1e-6, atol=0)
    try:
        png = plot(vae, "kl", tmp_path, data=x)
    except PyroVAEError as err:  # Dirichlet, full-covariance, low-rank, flows: no KL per dimension
        assert "factorize over the dimensions" in str(err)
    else:
        assert matplotlib.image.imread(png).std() > 0

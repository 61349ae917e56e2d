"""The VAE's model and guide are ordinary Pyro programs with the paper's N/M minibatch scaling; what a trained
VAE gives back (sample, embed, reconstruct)."""

import warnings

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import SVI, RenyiELBO, Trace_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO
from pyro.optim import Adam
from torch import nn

from pyrovae import FAMILIES, LIKELIHOODS, VAE, PyroVAEError
from pyrovae.summaries import mean_image, posterior_point
from pyrovae.vae import Generated


def _binary_data(n=64, d=20):
    g = torch.Generator().manual_seed(0)
    protos = torch.rand(4, d, generator=g).round()
    return torch.bernoulli(protos[torch.randint(0, 4, (n,), generator=g)] * 0.9 + 0.05, generator=g)


@pytest.mark.parametrize("elbo", [Trace_ELBO(), TraceMeanField_ELBO(), TraceGraph_ELBO(),
                                  RenyiELBO(alpha=0.5, num_particles=2)], ids=lambda e: type(e).__name__)
def test_trains_with_plain_pyro_svi(elbo):
    x = _binary_data()
    vae = VAE(20, 2, hidden=(16,))
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), loss=elbo)
    losses = [svi.step(x) for _ in range(150)]
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < first - 0.15 * abs(first), (first, last)


def test_subsample_scales_by_n_over_m(float64):
    """log p under plate(size=N, subsample=idx) is N/M times the unscaled minibatch log p (eq. 8)."""
    x = _binary_data(50).double()
    vae = VAE(20, 2, hidden=(8,)).double()
    idx = torch.tensor([3, 7, 11, 20, 41])
    guide_tr = poutine.trace(vae.guide).get_trace(x, subsample=idx)
    model_tr = poutine.trace(poutine.replay(vae.model, trace=guide_tr)).get_trace(x, subsample=idx)
    model_tr.compute_log_prob()
    site = model_tr.nodes["x"]
    assert torch.equal(site["value"], x[idx])
    expected = site["fn"].log_prob(x[idx]).sum() * 50 / 5
    assert site["log_prob_sum"].item() == pytest.approx(expected.item(), rel=1e-12)


def test_user_supplied_modules():
    enc, dec = nn.Linear(20, 6), nn.Sequential(nn.Linear(3, 20))
    vae = VAE(20, 3, encoder=enc, decoder=dec)
    tr = poutine.trace(vae.guide).get_trace(_binary_data(8))
    assert tr.nodes["z"]["value"].shape == (8, 3)
    assert vae.encoder is enc and vae.decoder is dec


def test_paper_and_pytorch_architectures():
    paper = VAE(784, 20, hidden=(500,), activation="tanh")
    assert isinstance(paper.encoder[1], nn.Tanh) and paper.encoder[0].out_features == 500
    torch_example = VAE(784, 20, hidden=(400,), activation="relu")
    assert [m.out_features for m in torch_example.decoder if isinstance(m, nn.Linear)] == [400, 784]


@pytest.mark.parametrize("kwargs, match", [
    ({"z_dim": 0}, "z_dim must be a positive integer"),
    ({"hidden": (400, -1)}, r"hidden\[1\] must be a positive integer"),
    ({"posterior": "normall"}, "did you mean 'normal'"),
    ({"likelihood": "bernouli"}, "did you mean 'bernoulli'"),
    ({"activation": "rellu"}, "did you mean 'relu'"),
])
def test_bad_construction(kwargs, match):
    with pytest.raises(PyroVAEError, match=match):
        VAE(20, **{"z_dim": 2, **kwargs})


def test_check_data():
    vae = VAE(20, 2, hidden=(8,))
    vae.check_data(_binary_data(4))
    with pytest.raises(PyroVAEError, match=r"shape \(N, 20\)"):
        vae.check_data(torch.zeros(4, 21))
    with pytest.raises(PyroVAEError, match="outside the support of the 'bernoulli'"):
        vae.check_data(torch.full((4, 20), 2.0))
    VAE(20, 2, likelihood="normal").check_data(torch.full((4, 20), 2.0))


def test_particles_broadcast_over_the_data_plate():
    vae = VAE(20, 2, hidden=(8,))
    with pyro.plate("particles", 7, dim=-2):
        tr = poutine.trace(vae.guide).get_trace(_binary_data(5))
    assert tr.nodes["z"]["value"].shape == (7, 5, 2)


# -- what a trained VAE gives back: sample, embed, reconstruct -----------------------------------


def _detached(*tensors):
    return all(not t.requires_grad and t.grad_fn is None for t in tensors)


@pytest.mark.parametrize("family", FAMILIES.names())
def test_sample_embed_reconstruct_for_every_posterior_family(family):
    vae = VAE(20, 3, hidden=(8,), posterior=family)
    x = _binary_data(6)
    pyro.set_rng_seed(1)
    drawn = vae.sample(5)
    assert isinstance(drawn, Generated) and drawn.z.shape == (5, 3) and drawn.mean.shape == drawn.x.shape == (5, 20)
    vae.check_data(drawn.x)  # a draw of the likelihood lies in its support
    assert bool(((drawn.mean > 0) & (drawn.mean < 1)).all())  # Bernoulli probabilities
    pyro.set_rng_seed(1)
    again = vae.sample(5)
    assert all(torch.equal(a, b) for a, b in zip(drawn, again))  # seeded: the same draws
    pyro.set_rng_seed(2)
    codes = vae.embed(x)
    pyro.set_rng_seed(2)  # a flow's median comes from samples of the same stream
    assert torch.equal(codes, posterior_point(vae.encode(x)))
    assert codes.shape == (6, 3) and bool(torch.isfinite(codes).all())  # a Cauchy posterior has no mean: its median
    recon = vae.reconstruct(x)
    assert recon.shape == (6, 20) and _detached(*drawn, codes, recon)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when float() drops a graph: there is none
        float(recon.sum()), float(codes.sum())


@pytest.mark.parametrize("likelihood", LIKELIHOODS.names())
def test_sample_and_reconstruct_for_every_likelihood(likelihood):
    vae = VAE(20, 2, hidden=(8,), likelihood=likelihood)
    drawn = vae.sample(7)
    vae.check_data(drawn.x)
    recon = vae.reconstruct(drawn.x)  # the draws are valid rows to encode
    assert recon.shape == drawn.mean.shape == (7, 20) and _detached(*drawn, recon)
    assert torch.equal(recon, mean_image(vae.decode(vae.embed(drawn.x))))


@pytest.mark.parametrize("conditional", ["prior", "full"])
def test_sample_embed_reconstruct_of_a_conditional_vae(conditional):
    vae = VAE(20, 2, hidden=(8,), conditional=conditional, num_classes=3)
    y = torch.tensor([0, 1, 2, 2])
    drawn = vae.sample(4, y=y)
    assert drawn.z.shape == (4, 2) and drawn.x.shape == (4, 20)
    pyro.set_rng_seed(0)
    one_class = vae.sample(4, y=2)
    pyro.set_rng_seed(0)
    assert torch.equal(one_class.z, vae.sample(4, y=torch.full((4,), 2)).z)  # an int is every row's class
    if conditional == "prior":  # z ~ N(mu_y, I) (Su 2018, eq. 8): draws of class y centre on mu_y
        with torch.no_grad():
            vae.prior.means.copy_(torch.tensor([[5.0, 5.0], [-5.0, 0.0], [0.0, 0.0]]))
        assert torch.allclose(vae.sample(4000, y=1).z.mean(0), torch.tensor([-5.0, 0.0]), atol=0.1)
    x = _binary_data(4)
    assert vae.embed(x, y).shape == (4, 2) and vae.reconstruct(x, y).shape == (4, 20)
    with pytest.raises(PyroVAEError, match="needs"):
        vae.sample(4)
    with pytest.raises(PyroVAEError, match="needs"):
        vae.reconstruct(x)
    with pytest.raises(PyroVAEError, match=r"must lie in 0\.\.2, got 3"):
        vae.sample(2, y=3)


def test_sample_embed_reconstruct_refuse_bad_input():
    vae = VAE(20, 2, hidden=(8,))
    with pytest.raises(PyroVAEError, match="n must be a positive integer"):
        vae.sample(0)
    with pytest.raises(PyroVAEError, match=r"shape \(N, 20\)"):
        vae.embed(torch.zeros(3, 21))
    with pytest.raises(PyroVAEError, match="support"):
        vae.reconstruct(torch.full((3, 20), 2.0))
    assert vae.sample(3).z.device == next(vae.parameters()).device
    assert vae.embed(_binary_data(3).double()).dtype == torch.float32  # rows follow the VAE's dtype

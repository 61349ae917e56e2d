"""The convolutional encoder and decoder (``arch="conv"``): shapes, training, figures, refusals."""

import pyro
import pytest
import torch

from pyrovae import VAE, PyroVAEError, RunConfig, fit, load_dataset
from pyrovae.architectures import ARCHITECTURES, ConvDecoder, ConvEncoder
from pyrovae.estimators import ESTIMATORS, estimator
from pyrovae.fastpath import build_step, make_optimizer
from pyrovae.likelihoods import LIKELIHOODS
from pyrovae.plots import PLOTS, write_figures


@pytest.fixture(autouse=True)
def one_thread():
    """Small convolutions on a loaded 2-core machine wait for a busy core with 2 OpenMP threads
    (measured: 0.96 s a step against 0.04 s on one thread); results do not depend on it."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_architectures_are_registered():
    assert ARCHITECTURES.names() == ("mlp", "conv")


@pytest.mark.parametrize("shape", [(28, 28), (5, 7)])
@pytest.mark.parametrize("likelihood", ["bernoulli", "beta"])  # 1 and 2 raw outputs per pixel
def test_conv_networks_map_rows_to_heads(shape, likelihood):
    x_dim = shape[0] * shape[1]
    vae = VAE(x_dim, 3, (16,), likelihood=likelihood, arch="conv", image_shape=shape)
    assert isinstance(vae.encoder, ConvEncoder) and isinstance(vae.decoder, ConvDecoder)
    assert vae.encoder(torch.rand(2, 5, x_dim)).shape == (2, 5, vae.posterior_family.head_size(3))
    assert vae.decoder(torch.randn(4, 5, 3)).shape == (4, 5, LIKELIHOODS[likelihood].head_size(x_dim))
    assert vae.decode(torch.randn(6, 3)).batch_shape == (6,)


def _maps(vae, z):
    """The decoder's last feature maps ``(N, channels, H, W)``, before they are laid out as raw outputs."""
    return vae.decoder.deconv(vae.decoder.head(z).reshape(-1, *vae.decoder.start))


def test_each_pixels_outputs_come_from_its_own_position(float64):
    """Channel c at pixel p is output c of pixel p for the likelihood: beta reads blocks, categorical pixels."""
    z = torch.randn(3, 2)
    beta = VAE(16, 2, (8,), likelihood="beta", arch="conv", image_shape=(4, 4))
    alpha = beta.decode(z).base_dist.concentration1
    torch.testing.assert_close(alpha, _maps(beta, z)[:, 0].reshape(3, 16).exp())
    categorical = VAE(16, 2, (8,), likelihood="categorical", arch="conv", image_shape=(4, 4))
    logits = categorical.decode(z).base_dist.logits  # (3, 16 pixels, 256 levels)
    expected = _maps(categorical, z).permute(0, 2, 3, 1).reshape(3, 16, 256).log_softmax(-1)
    torch.testing.assert_close(logits, expected)


def test_default_conv_for_28x28_halves_twice_to_64_maps_of_7x7():
    vae = VAE(784, 2, (32,), arch="conv", image_shape=(28, 28))
    assert vae.decoder.start == (64, 7, 7)
    assert vae.encoder.head[0].in_features == 64 * 7 * 7


def test_conv_encoder_reads_the_label_columns_of_a_conditional_vae():
    vae = VAE(64, 2, (8,), arch="conv", image_shape=(8, 8), conditional="full", num_classes=3)
    x = torch.rand(4, 64).round()
    a, b = vae.encode(x, torch.zeros(4, dtype=torch.long)), vae.encode(x, torch.ones(4, dtype=torch.long))
    assert not torch.allclose(a.mean, b.mean)


def _images(n=48, side=8):
    """Binary 8x8 images with structure to learn: a bar in one of two halves."""
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(n, side, side)
    top = torch.rand(n, generator=g) < 0.5
    x[top, : side // 2] = 1.0
    x[~top, side // 2:] = 1.0
    flips = torch.rand(n, side, side, generator=g) < 0.05
    return (x + flips).remainder(2).reshape(n, -1)


@pytest.mark.parametrize("name", ESTIMATORS.names())
def test_conv_vae_trains_under_every_estimator(float64, name):
    x = _images()
    vae = VAE(64, 2, (16,), arch="conv", image_shape=(8, 8))
    dev = torch.device("cpu")
    particles = 4 if name in ("iwae", "dreg") else 1
    step = build_step("eager", vae, estimator(name, particles, max_plate_nesting=1),
                      make_optimizer(torch.optim.Adam, vae.parameters(), 1e-2, dev), dev)
    losses = torch.stack([step(x, torch.arange(len(x))).detach() for _ in range(40)])
    assert torch.isfinite(losses).all()
    assert losses[-5:].mean() < losses[:5].mean() - 5.0  # nats per image: it learned the bars


def test_conv_needs_image_data():
    with pytest.raises(PyroVAEError, match="these data have no image shape"):
        VAE(64, 2, arch="conv")
    with pytest.raises(PyroVAEError, match="at least 4x4 pixels"):
        VAE(6, 2, arch="conv", image_shape=(2, 3))
    with pytest.raises(PyroVAEError, match="did you mean 'conv'"):
        VAE(64, 2, arch="cnv", image_shape=(8, 8))


def test_old_configs_load_as_mlp():
    old = {k: v for k, v in RunConfig().to_dict().items() if k != "arch"}
    assert RunConfig.from_dict(old).arch == "mlp"


def test_every_figure_for_a_conv_run(tmp_path):
    """A conv run on mnist-5k records its architecture, reloads from its folder, and draws every figure."""
    mnist = load_dataset("mnist-5k", binarize="dynamic", seed=0)
    config = RunConfig(dataset="mnist-5k", latent_dim=2, hidden=(16,), epochs=1, device="cpu", arch="conv")
    pyro.set_rng_seed(0)
    vae = VAE(784, 2, (16,), arch="conv", image_shape=mnist.image_shape)
    fit(vae, mnist.train[:200], mnist.test[:100], epochs=1, dynamic_binarization=True, device="cpu",
        progress=False, out=tmp_path, config=config, figures=False)
    assert set(write_figures(tmp_path)) == set(PLOTS.names())

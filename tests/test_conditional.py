"""Class-conditional VAEs: the class-mean prior N(mu_y, I) and the CVAE with y in encoder and decoder.

The class-mean prior is eq. 8 of Su Jianlin, "Variational autoencoders (1)", 2018.
"""

import json
import subprocess
import sys

import matplotlib.image
import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam
from torch.distributions import kl_divergence

from pyrovae import VAE, PyroVAEError, class_mean_accuracy, evaluate_elbo, fit, load_dataset
from pyrovae.estimators import estimator
from pyrovae.evaluate import seeded
from pyrovae.kl import kl_routes


def _data(n=24, d=12, classes=4):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % classes
    protos = torch.rand(classes, d, generator=g, dtype=torch.float64)
    return torch.bernoulli(protos[y], generator=g), y


def _traces(vae, x, y):
    guide = poutine.trace(vae.guide).get_trace(x, y)
    model = poutine.trace(poutine.replay(vae.model, trace=guide)).get_trace(x, y)
    return model, guide


def test_eq8_kl_equals_its_closed_form(float64):
    """KL(q(z|x) || N(mu_y, I)) = 1/2 sum((mu - mu^y)^2 + sigma^2 - log sigma^2 - 1), to 1e-10 in float64."""
    x, y = _data()
    vae = VAE(12, 3, hidden=(8,), conditional="prior", num_classes=4).double()
    with torch.no_grad():
        vae.prior.means.normal_()
    model, guide = _traces(vae, x, y)
    assert kl_routes(model, guide)["z"] == "analytic"
    kl = kl_divergence(guide.nodes["z"]["fn"], model.nodes["z"]["fn"])
    with torch.no_grad():
        q = vae.encode(x).base_dist
        closed = 0.5 * ((q.loc - vae.prior.means[y]) ** 2 + q.scale ** 2 - torch.log(q.scale ** 2) - 1).sum(-1)
    assert kl.shape == (24,)
    assert torch.allclose(kl, closed, rtol=0, atol=1e-10)
    # The analytic estimator's KL part is the same number: loss(KL weight 1) - loss(weight 0), same noise.
    parts = []
    for weight in (1.0, 0.0):
        with seeded(0), vae.kl_weighted(weight):
            parts.append(estimator("analytic").loss(vae.model, vae.guide, x, y))
    assert parts[0] - parts[1] == pytest.approx(float(closed.sum()), abs=1e-10)


def test_class_prior_samples_sit_at_their_class_means(float64):
    vae = VAE(12, 3, hidden=(8,), conditional="prior", num_classes=4).double()
    with torch.no_grad():
        vae.prior.means.copy_(10 * torch.eye(4, 3, dtype=torch.float64))
    z = vae.prior(torch.tensor([2] * 4000)).sample()
    assert torch.allclose(z.mean(0), vae.prior.means[2], atol=0.1)
    assert torch.allclose(z.std(0), torch.ones(3, dtype=torch.float64), atol=0.05)


def test_full_cvae_feeds_the_label_to_encoder_and_decoder(float64):
    x, y = _data()
    vae = VAE(12, 3, hidden=(8,), conditional="full", num_classes=4).double()
    assert vae.encoder[0].in_features == 12 + 4 and vae.decoder[0].in_features == 3 + 4
    z = torch.zeros(2, 3, dtype=torch.float64)
    with torch.no_grad():
        means = [vae.decode(z, torch.tensor([c, c])).mean for c in (0, 1)]
        codes = [vae.encode(x[:2], torch.tensor([c, c])).mean for c in (0, 1)]
    assert not torch.allclose(*means) and not torch.allclose(*codes)
    with pyro.plate("particles", 5, dim=-2):  # the one-hot label broadcasts over particles
        tr = poutine.trace(vae.guide).get_trace(x, y)
    assert tr.nodes["z"]["value"].shape == (5, 24, 3)


@pytest.mark.parametrize("conditional", ["prior", "full"])
def test_conditional_vaes_train_with_plain_pyro_svi(conditional):
    x, y = _data(64)
    vae = VAE(12, 2, hidden=(16,), conditional=conditional, num_classes=4)
    svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-2}), loss=Trace_ELBO())
    losses = [svi.step(x.float(), y) for _ in range(150)]
    assert sum(losses[-10:]) < sum(losses[:10])


def test_labels_are_required_and_checked():
    x, y = _data()
    x = x.float()
    vae = VAE(12, 2, hidden=(8,), conditional="prior", num_classes=4)
    with pytest.raises(PyroVAEError, match="needs class labels"):
        vae.model(x)
    with pytest.raises(PyroVAEError, match="needs class labels"):
        VAE(12, 2, conditional="full", num_classes=4).guide(x)
    with pytest.raises(PyroVAEError, match="needs train labels"):
        fit(vae, x, epochs=1, batch_size=8, device="cpu", progress=False)
    with pytest.raises(PyroVAEError, match=r"must lie in 0..3, got 7"):
        fit(vae, x, train_labels=torch.full((24,), 7), epochs=1, batch_size=8, device="cpu", progress=False)
    with pytest.raises(PyroVAEError, match=r"shape \(24,\)"):
        evaluate_elbo(vae, x, labels=y[:5])
    with pytest.raises(PyroVAEError, match="needs num_classes"):
        VAE(12, 2, conditional="prior")
    with pytest.raises(PyroVAEError, match="replaces the 'normal' prior"):
        VAE(12, 2, posterior="laplace", conditional="prior", num_classes=4)
    with pytest.raises(PyroVAEError, match="did you mean 'prior'"):
        VAE(12, 2, conditional="priors", num_classes=4)
    # An unconditional VAE ignores labels.
    plain = VAE(12, 2, hidden=(8,))
    assert evaluate_elbo(plain, x, seed=0, labels=y) == evaluate_elbo(plain, x, seed=0)


def test_conditional_prior_on_mnist_5k_learns_distinct_class_means():
    """Su 2018, eq. 8 on mnist-5k: distinct mu^y, and the nearest mu^y classifies test codes far above chance.

    Measured (784-200-10, Adam 1e-2, 4 epochs, seed 0): accuracy about 0.75 against a chance of 0.10.
    """
    data = load_dataset("mnist-5k", binarize="dynamic", seed=0)
    pyro.set_rng_seed(0)
    vae = VAE(784, 10, hidden=(200,), conditional="prior", num_classes=10)
    fit(vae, data.train, data.test, train_labels=data.train_labels, test_labels=data.test_labels, epochs=4,
        lr=1e-2, dynamic_binarization=True, device="cpu", seed=0, progress=False)
    means = vae.prior.means.detach()
    assert float(torch.pdist(means).min()) > 0.3  # they all started at 0
    accuracy = class_mean_accuracy(vae, data.test, data.test_labels)
    print(f"nearest-class-mean accuracy: {accuracy:.3f}")
    assert accuracy > 0.5


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pyrovae", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def test_cli_conditional_training_and_class_grid(tmp_path):
    run = tmp_path / "run"
    res = _cli("train", "--conditional", "prior", "--epochs", 1, "--latent-dim", 4, "--hidden", 32, "--no-progress",
               "--device", "cpu", "--out", run, "--no-figures")
    assert res.returncode == 0, res.stderr
    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert (config["conditional"], config["num_classes"]) == ("prior", 10)
    assert 0 <= summary["class_mean_accuracy"] <= 1 and "nearest class mean accuracy" in res.stdout
    assert not list(run.glob("*.png")) and (run / "report.md").is_file()
    res = _cli("plot", run, "--kind", "samples")
    assert res.returncode == 0, res.stderr
    height, width = matplotlib.image.imread(run / "samples.png").shape[:2]
    assert width >= 600 and abs(height / width - 10 / 8) < 0.1  # a row of 8 draws per class, 10 classes
    res = _cli("evaluate", run, "--samples", 5, "--no-progress")
    assert res.returncode == 0, res.stderr


def test_cli_conditional_needs_labels(tmp_path):
    res = _cli("train", "--dataset", "synthetic", "--likelihood", "normal", "--conditional", "prior",
               "--out", tmp_path / "run", "--no-progress")
    assert res.returncode == 2 and "needs labelled data" in res.stderr and len(res.stderr.splitlines()) == 1
    assert not (tmp_path / "run").exists()

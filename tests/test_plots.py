"""Figures and the run report: every kind for a trained run, grid geometry, interpolation ends, the CLI."""

import re
import subprocess
import sys

import matplotlib.image
import numpy as np
import pyro
import pyrovae
import pytest
import torch

from pyrovae import VAE, PyroVAEError, RunConfig, fit, load_dataset
from pyrovae.plots import (DPI, FIGSIZES, MIN_GRID_WIDTH, PLOTS, PlotData, grid_tensor, interp_pair, interpolate,
                           mean_image, plot, reconstruct, write_figures)
from pyrovae.run_report import write_run_report

SIDE = 28 + 2  # an MNIST image plus torchvision's default padding of 2


def _grid_size(rows, cols):
    return rows * SIDE + 2, cols * SIDE + 2


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist-5k", binarize="dynamic", seed=0)


def _train(mnist, out, z_dim=2, conditional="none", epochs=2):
    config = RunConfig(dataset="mnist-5k", latent_dim=z_dim, hidden=(64,), epochs=epochs, device="cpu",
                       conditional=conditional, num_classes=10 if conditional != "none" else None)
    pyro.set_rng_seed(0)
    vae = VAE(784, z_dim, hidden=(64,), conditional=conditional, num_classes=config.num_classes)
    return fit(vae, mnist.train[:1000], mnist.test, train_labels=mnist.train_labels[:1000],
               test_labels=mnist.test_labels, epochs=epochs, dynamic_binarization=True, device="cpu",
               progress=False, out=out, config=config, lr=3e-3)


@pytest.fixture(scope="module")
def run2d(mnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "z2"
    _train(mnist, out)
    return out


GRIDS = {
    "recon": _grid_size(4, 8),        # 2 blocks of 8 inputs above their 8 reconstructions
    "samples": _grid_size(8, 8),
    "manifold": _grid_size(20, 20),
    "interp": _grid_size(2, 12),      # linear and spherical rows: input, 10 steps, input
}
FIGURES = {kind: (int(h * DPI), int(w * DPI)) for kind, (w, h) in FIGSIZES.items()}
EXPECTED = {**GRIDS, **FIGURES}


def _check_size(kind, image):
    """Matplotlib kinds: exactly FIGSIZES at DPI. Grids: the bare grid scaled by a whole number to at least
    MIN_GRID_WIDTH, plus a title band and room for row names (28 px images shown at 3x or more)."""
    height, width = image.shape[:2]
    if kind in FIGURES:
        assert (height, width) == FIGURES[kind], kind
        return
    grid_h, grid_w = GRIDS[kind]
    scale = -(-MIN_GRID_WIDTH // grid_w)
    assert width >= max(MIN_GRID_WIDTH, scale * grid_w) and height > scale * grid_h + 20, (kind, image.shape)


def _png(path):
    image = matplotlib.image.imread(path)  # raises unless the file decodes as an image
    return image if image.ndim == 2 else image[..., :3]  # grids are grey, figures RGBA


def test_every_kind_for_a_trained_run(run2d):
    paths = write_figures(run2d)
    assert list(paths) == list(PLOTS.names())
    for kind, path in paths.items():
        assert path == run2d / f"{kind}.png"
        image = _png(path)
        _check_size(kind, image)
        assert float(image.std()) > 0.01, f"{kind} is constant"


def test_report_links_only_files_that_exist(run2d):
    write_figures(run2d, ["recon", "kl"])
    (run2d / "samples.png").unlink(missing_ok=True)
    text = write_run_report(run2d).read_text()
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert "recon.png" in links and "samples.png" not in links and "config.json" in links
    assert all((run2d / link).is_file() for link in links)
    assert "| latent_dim | 2 |" in text and "test E_q log p(x\\|z)" in text


def test_interpolation_ends_are_the_reconstructions(run2d):
    from pyrovae import load_run

    vae, _, data, _ = load_run(run2d)
    xa, xb = data.test[0], data.test[150]
    ends = reconstruct(vae, torch.stack([xa, xb]))
    for path in ("linear", "spherical"):
        images = interpolate(vae, xa, xb, steps=7, path=path)
        assert images.shape == (7, 784)
        assert torch.allclose(images[0], ends[0], atol=1e-6) and torch.allclose(images[-1], ends[1], atol=1e-6)
        assert not torch.allclose(images[3], ends[0], atol=1e-3)  # the path moves


def test_manifold_needs_a_2d_latent_space(mnist, tmp_path):
    out = tmp_path / "z5"
    _train(mnist, out, z_dim=5, epochs=1)
    assert "manifold" not in write_figures(out)  # the default set skips it
    with pytest.raises(PyroVAEError, match="needs a 2-D latent space; this run has Nz = 5"):
        write_figures(out, ["manifold"])
    _check_size("latent", _png(out / "latent.png"))  # PCA of 5-D codes


def test_conditional_samples_are_a_class_by_sample_grid(mnist, tmp_path):
    result = _train(mnist, tmp_path / "cvae", conditional="full", epochs=1)
    data = PlotData(result.vae, mnist.test, mnist.test_labels, (28, 28))
    assert grid_tensor("samples", data).shape[1:] == _grid_size(10, 8)
    fig = pyrovae.figure(tmp_path / "cvae", "samples")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [str(c) for c in range(10)]  # a row per class
    data = PlotData(result.vae, mnist.test, mnist.test_labels, (28, 28))
    a, b, label = interp_pair(data)
    assert label == int(mnist.test_labels[a]) == int(mnist.test_labels[b]) and a != b  # one label per path
    ends = reconstruct(result.vae, mnist.test[[a, b]], mnist.test_labels[[a, b]])
    path = interpolate(result.vae, mnist.test[a], mnist.test[b], path="spherical", label=label)
    assert torch.allclose(path[0], ends[0], atol=1e-6) and torch.allclose(path[-1], ends[1], atol=1e-6)


def test_plot_an_in_memory_vae(mnist, tmp_path):
    vae = VAE(784, 3, hidden=(32,))
    path = plot(vae, "recon", tmp_path, data=mnist)
    _check_size("recon", _png(path))
    with pytest.raises(PyroVAEError, match="no per-epoch metrics"):
        plot(vae, "curves", tmp_path, data=mnist)
    with pytest.raises(PyroVAEError, match="not images"):
        plot(vae, "samples", tmp_path, data=mnist.test)
    with pytest.raises(PyroVAEError, match="factorize"):
        plot(VAE(784, 3, hidden=(32,), posterior="full-normal"), "kl", tmp_path, data=mnist)


def test_mean_image_of_pixel_levels():
    logits = torch.full((2, 3, 256), -50.0)
    logits[..., 7] = 50.0
    d = VAE(3, 2, likelihood="categorical").likelihood(logits.flatten(1))
    assert torch.allclose(mean_image(d), torch.full((2, 3), 7.0))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pyrovae", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def test_cli_train_writes_figures_and_plot_redraws(tmp_path):
    run = tmp_path / "run"
    res = _cli("train", "--epochs", 1, "--latent-dim", 3, "--hidden", 32, "--no-progress", "--device", "cpu",
               "--out", run, "--beta", 0.5, "--kl-warmup-epochs", 2)
    assert res.returncode == 0, res.stderr
    kinds = {p.stem for p in run.glob("*.png")}
    assert kinds == set(PLOTS.names()) - {"manifold"}
    assert (run / "report.md").is_file() and "report:" in res.stdout
    (run / "recon.png").unlink()
    res = _cli("plot", run, "--kind", "recon,kl")
    assert res.returncode == 0, res.stderr
    assert (run / "recon.png").is_file()
    for args, message in ((("--kind", "manifold"), "needs a 2-D latent space"),
                          (("--kind", "manfold"), "did you mean 'manifold'")):
        res = _cli("plot", run, *args)
        assert res.returncode == 2 and message in res.stderr and len(res.stderr.splitlines()) == 1
        assert "Traceback" not in res.stderr


def test_tensorboard_missing_is_one_line(tmp_path, monkeypatch):
    from pyrovae import tblog

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    with pytest.raises(PyroVAEError, match="needs the tensorboard package"):
        tblog.require_tensorboard()


def test_tensorboard_logs_scalars_and_grids(mnist, tmp_path):
    pytest.importorskip("torch.utils.tensorboard")
    from pyrovae.tblog import TensorBoardLogger

    logger = TensorBoardLogger(tmp_path / "tb", mnist.test[:16], image_shape=(28, 28))
    vae = VAE(784, 2, hidden=(16,))
    fit(vae, mnist.train[:200], mnist.test[:100], epochs=2, device="cpu", progress=False, out=tmp_path / "tb",
        callback=logger, dynamic_binarization=True)
    logger.close()
    assert list((tmp_path / "tb" / "tensorboard").glob("events.out.tfevents.*"))


def test_importing_pyrovae_leaves_the_matplotlib_backend_and_pyplot_alone():
    """A notebook's backend and open figures survive ``import pyrovae`` (a fresh interpreter)."""
    code = ("import matplotlib, sys; matplotlib.use('module://x'); import pyrovae, pyrovae.plots, pyrovae.report; "
            "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["module://x", "False"]


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_figure_returns_the_drawing_for_a_notebook(run2d, tmp_path, kind):
    """``pyrovae.figure`` returns a matplotlib Figure with a title, the same picture ``plot`` writes."""
    from matplotlib.figure import Figure

    fig = pyrovae.figure(run2d, kind)
    assert isinstance(fig, Figure)
    titles = [fig._suptitle.get_text() if fig._suptitle else ""] + [ax.get_title() for ax in fig.axes]
    assert any(len(t) > 10 for t in titles), (kind, titles)
    fig.savefig(tmp_path / "fig.png", dpi=DPI)
    drawn = _png(tmp_path / "fig.png")
    _check_size(kind, drawn)
    if kind in GRIDS:  # drawn by the same code as the PNG that plot writes
        written = _png(plot(run2d, kind, tmp_path))
        assert drawn.shape == written.shape and float(abs(drawn - written).max()) <= 2 / 255 + 1e-6


@pytest.mark.parametrize("count, nrow", [(2, 3), (7, 2), (16, 8), (17, 8), (64, 8)])
def test_image_grid_lays_out_images_as_torchvision_does(count, nrow):
    from torchvision.utils import make_grid

    from pyrovae.plots import PADDING, image_grid

    images = torch.rand(count, 5, 4, generator=torch.Generator().manual_seed(count))
    expected = make_grid(images[:, None], nrow=nrow, padding=PADDING, pad_value=1.0)
    assert torch.equal(image_grid(images, nrow), expected)


def test_grid_shows_each_image_pixel_as_a_square_block(tmp_path):
    """Small grids are scaled up by a whole number, nearest neighbour: sharp, and exactly the images."""
    from pyrovae.plots import _grid, grid_figure, save_figure

    images = torch.rand(3, 784, generator=torch.Generator().manual_seed(0))
    fig = grid_figure(images, 3, (28, 28), "three images", row_names=["row"])
    png = _png(save_figure(fig, tmp_path / "grid.png"))[..., 0]
    grid = _grid(images, 3, (28, 28))[0].numpy()
    scale = -(-MIN_GRID_WIDTH // grid.shape[1])
    assert scale == 7 and png.shape[1] >= MIN_GRID_WIDTH
    box = fig.axes[0].get_window_extent()
    top, left = round(png.shape[0] - box.y1), round(box.x0)
    shown = png[top:top + scale * grid.shape[0], left:left + scale * grid.shape[1]]
    # the grey colormap and the 8-bit PNG round once each
    assert float(abs(shown - np.kron(grid, np.ones((scale, scale)))).max()) <= 2 / 255 + 1e-6


def test_latent_and_class_grids_name_the_classes(mnist, tmp_path):
    """Fashion-MNIST's label 0 is 'T-shirt/top': the names come with the Dataset and reach every figure."""
    from pyrovae.data.idx import CLASS_NAMES

    names = CLASS_NAMES["fashion-mnist"]
    assert names[0] == "T-shirt/top" and names[9] == "Ankle boot" and len(names) == 10
    clothes = pyrovae.Dataset("clothes", mnist.train[:100], mnist.test[:200], mnist.train_labels[:100],
                              mnist.test_labels[:200], "none", (28, 28), class_names=names)
    vae = VAE(784, 3, hidden=(16,), conditional="prior", num_classes=10)
    latent = pyrovae.figure(vae, "latent", data=clothes)
    colorbar = latent.axes[-1]
    assert [t.get_text() for t in colorbar.get_yticklabels()] == list(names)
    assert {t.get_text() for t in latent.axes[0].texts} == set(names)  # the class means mu^y, by name
    samples = pyrovae.figure(vae, "samples", data=clothes)
    assert [t.get_text() for t in samples.axes[0].get_yticklabels()] == list(names)


def test_report_shows_every_log_likelihood_estimate_and_the_gaps():
    """report.md lists what ``pyrovae evaluate`` wrote: IS and AIS estimates and the inference gaps."""
    from pyrovae.run_report import markdown

    summary = {"log_likelihood": {"num_samples": 5000, "nats": -101.09},
               "log_likelihood_ais": {"num_samples": 16, "nats": -99.5},
               "inference_gaps": {"num_points": 100, "approximation_gap": 3.03, "amortization_gap": 5.55}}
    text = markdown("run", {}, [], summary, [])
    for row in ("| test log p(x), IS with K = 5000 | -101.090 |", "| test log p(x), AIS with 16 chains | -99.500 |",
                "| approximation gap (100 test points) | 3.030 |", "| amortization gap (100 test points) | 5.550 |"):
        assert row in text, text

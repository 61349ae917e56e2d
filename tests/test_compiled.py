"""The compiled step computes eager's numbers: the capture for every estimator and family, Inductor once."""

import sys

import pyro
import pytest
import torch

from pyrovae import FAMILIES, VAE, fastpath, fit
from pyrovae.compiled import CompiledStep
from pyrovae.estimators import ESTIMATORS, estimator
from pyrovae.families import closed_form_table
from pyrovae.fastpath import COMPILE_PAYS_AFTER, EagerFallbackWarning, build_step, default_step, make_optimizer

N, M, LR, STEPS = 120, 20, 1e-2, 10
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    """Models this small gain nothing from threads, and lose much to them on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _train(step_name, name, posterior="normal", backend="aten", cls=VAE, strict=True):
    """Parameters and losses after ``STEPS`` steps of a small VAE from fixed weights, data and noise."""
    pyro.clear_param_store()
    pyro.set_rng_seed(1)
    x = torch.bernoulli(torch.rand(N, 16))
    vae = cls(16, 2, (8,), posterior=posterior)
    initial = _flat(vae)
    g = torch.Generator().manual_seed(3)
    idxs = [torch.randperm(N, generator=g)[:M] for _ in range(STEPS)]
    optim = make_optimizer(torch.optim.Adam, vae.parameters(), LR, CPU)
    particles = 1 if ESTIMATORS[name].bound == "elbo" else 3
    est = estimator(name, particles, max_plate_nesting=1)
    step = CompiledStep(vae, est, optim, strict=strict, backend=backend) if step_name == "compiled" else \
        build_step(step_name, vae, est, optim, CPU)
    pyro.set_rng_seed(2)  # the estimator's noise
    losses = torch.stack([step(x, idx).clone() for idx in idxs])
    assert (_flat(vae) - initial).abs().max() > 1e-3  # the parameters did move
    return _flat(vae), losses, step


def _flat(vae):
    return torch.cat([p.detach().flatten() for p in vae.parameters()])


def _assert_same(posterior, name):
    eager, eager_losses, _ = _train("eager", name, posterior)
    ours, losses, step = _train("compiled", name, posterior)
    assert not step._eager and len(step._compiled) == 1
    torch.testing.assert_close(ours, eager, rtol=0, atol=1e-10)
    torch.testing.assert_close(losses, eager_losses, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ESTIMATORS.names())
def test_capture_equals_eager_for_every_estimator(float64, name):
    """dreg too: its gradient hook runs inside the captured backward pass, so the graph keeps it."""
    _assert_same("normal", name)


def _family_estimators(name):
    return ["mc"] + (["analytic"] if closed_form_table()[name, FAMILIES[name].default_prior] == "yes" else [])


@pytest.mark.parametrize("posterior, name", [(f, e) for f in FAMILIES.names() for e in _family_estimators(f)
                                             if f != "normal"])
def test_capture_equals_eager_for_every_family(float64, posterior, name):
    _assert_same(posterior, name)


class _DataDependent(VAE):
    """A model whose Python reads a data value: a capture would freeze it."""

    def model(self, x, y=None, subsample=None):
        with pyro.poutine.scale(scale=float(x[subsample].mean())):
            return super().model(x, y, subsample)


def test_a_capture_that_differs_from_eager_falls_back_with_a_warning(float64):
    with pytest.warns(EagerFallbackWarning, match="step 'compiled' cannot record this model: RuntimeError: "
                                                  "the model's Python reads a tensor's value"):
        ours, _, step = _train("compiled", "mc", cls=_DataDependent, strict=False)
    eager, _, _ = _train("eager", "mc", cls=_DataDependent)
    assert step._eager and torch.equal(ours, eager)


def _fit(out, epochs, step, resume=False):
    """12 steps an epoch of a 20-8-2 VAE on grey-level rows binarized afresh every epoch."""
    torch.manual_seed(123)
    x = torch.rand(240, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return fit(VAE(20, 2, hidden=(8,)), x, epochs=epochs, batch_size=20, seed=7, dynamic_binarization=True,
               device="cpu", progress=False, out=out, resume=resume, figures=False, step=step)


@pytest.mark.filterwarnings("error::pyrovae.fastpath.EagerFallbackWarning")
def test_inductor_step_equals_eager_and_resumes_bit_for_bit(float64, tmp_path):
    """The one real Inductor compile (the FX graph cache makes the later ones cheap); a fallback to
    eager execution would prove nothing, so its warning is an error here."""
    from torch._inductor import config

    eager = _fit(tmp_path / "eager", 2, "eager").vae.state_dict()
    full = _fit(tmp_path / "full", 2, "compiled").vae.state_dict()
    assert config.fallback_random is False  # set only while compiling
    _fit(tmp_path / "part", 1, "compiled")
    resumed = _fit(tmp_path / "part", 2, "compiled", resume=True).vae.state_dict()
    for k in eager:
        assert torch.equal(resumed[k], full[k])
        torch.testing.assert_close(full[k], eager[k], rtol=0, atol=1e-10)
        assert full[k].dtype == torch.float64


@pytest.mark.parametrize("steps, compiler, expected", [
    (None, "found", "jit"), (COMPILE_PAYS_AFTER - 1, "found", "jit"), (COMPILE_PAYS_AFTER, "found", "compiled"),
    (COMPILE_PAYS_AFTER, "missing", "jit")])
def test_auto_compiles_a_cpu_run_long_enough_to_pay_for_it(monkeypatch, steps, compiler, expected):
    """The compile time is paid back only by a long run, and Inductor needs a C++ compiler."""
    monkeypatch.setenv("CXX", sys.executable if compiler == "found" else "/nonexistent/c++")
    vae = VAE(20, 2, hidden=(8,))
    optim = make_optimizer(torch.optim.Adam, vae.parameters(), 1e-3, torch.device("cpu"))
    assert default_step(estimator("mc"), torch.device("cpu"), optim, steps) == expected
    assert default_step(estimator("dreg"), torch.device("cpu"), optim, steps) == \
        ("compiled" if expected == "compiled" else "eager")  # a compiled graph keeps dreg's hook


@pytest.mark.filterwarnings("error::pyrovae.fastpath.EagerFallbackWarning")
def test_fit_under_auto_compiles_a_long_run_and_says_so(float64, tmp_path, monkeypatch):
    """The run's total steps decide, and summary.json names the step that ran: a short run records
    with jit; the same run counted as long enough compiles, and trains as step='compiled' does."""
    short = _fit(tmp_path / "short", 2, "auto")
    assert short.summary["step"] == "jit"
    monkeypatch.setattr(fastpath, "COMPILE_PAYS_AFTER", 24)  # this run's 2 epochs of 12 steps
    long = _fit(tmp_path / "long", 2, "auto")
    assert long.summary["step"] == "compiled"
    named = _fit(tmp_path / "named", 2, "compiled").vae.state_dict()
    for k, v in long.vae.state_dict().items():
        assert torch.equal(v, named[k])

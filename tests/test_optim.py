"""pyrovae.optim: the fused stand-ins update and checkpoint exactly as torch.optim's fused classes."""

import subprocess
import sys

import pytest
import torch

from pyrovae.fastpath import OPTIMIZERS, make_optimizer
from pyrovae.optim import FUSED, FusedAdam, fused_optimizer

NAMES = [name for name, cls in OPTIMIZERS.items() if cls in FUSED]


def _params(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=g, dtype=dtype)) for shape in [(5, 3), (3,), (2, 2, 2)]]


def _steps(optim, params, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        optim.zero_grad(set_to_none=True)
        for p in params[:-1] if i % 2 else params:  # every other step, one parameter has no gradient
            p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
        optim.step()


def _torch(name, params, **options):
    return OPTIMIZERS[name](params, fused=True, **options)


def _lean(name, params, **options):
    return FUSED[OPTIMIZERS[name]](params, **options)


def _assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for i in sa["state"]:
        assert sa["state"][i].keys() == sb["state"][i].keys()
        for key, value in sa["state"][i].items():
            other = sb["state"][i][key]
            assert value.dtype == other.dtype and value.device == other.device
            assert torch.equal(value, other), (i, key)


def test_every_registered_optimizer_has_a_stand_in():
    assert NAMES == list(OPTIMIZERS.names())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", NAMES)
def test_updates_and_state_are_bit_identical_to_torch(name, dtype):
    ours, theirs = _params(dtype), _params(dtype)
    lean, reference = _lean(name, ours, lr=0.05), _torch(name, theirs, lr=0.05)
    _assert_same_state(lean, reference)  # Adagrad's accumulators exist before the first step, as torch's do
    _steps(lean, ours, 7)
    _steps(reference, theirs, 7)
    for p, q in zip(ours, theirs):
        assert torch.equal(p, q)
    _assert_same_state(lean, reference)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("direction", ["torch->ours", "ours->torch"])
def test_state_dicts_load_both_ways(name, direction):
    """A checkpoint written by either class resumes in the other exactly as an uninterrupted run."""
    dtype = torch.float64
    first, second = (_torch, _lean) if direction == "torch->ours" else (_lean, _torch)
    straight = _params(dtype)
    optim = _torch(name, straight, lr=0.05)
    _steps(optim, straight, 4)
    _steps(optim, straight, 3, seed=2)

    resumed = _params(dtype)
    before = first(name, resumed, lr=0.05)
    _steps(before, resumed, 4)
    after = second(name, resumed, lr=0.05)
    after.load_state_dict(before.state_dict())
    _steps(after, resumed, 3, seed=2)
    for p, q in zip(straight, resumed):
        assert torch.equal(p, q)


def test_load_refuses_another_parameter_count():
    with pytest.raises(ValueError, match="different number of parameters"):
        FusedAdam(_params(torch.float64)[:2]).load_state_dict(FusedAdam(_params(torch.float64)).state_dict())


def test_make_optimizer_uses_torch_where_no_kernel_or_capturable():
    params = _params(torch.float32)
    assert isinstance(make_optimizer(torch.optim.Adam, params, 1e-3, torch.device("cpu")), FusedAdam)
    assert type(make_optimizer(torch.optim.Adam, params, 1e-3, torch.device("cpu"), capturable=True)) is torch.optim.Adam
    assert fused_optimizer(torch.optim.Adagrad, params, torch.device("cuda"), lr=0.1) is None
    assert fused_optimizer(torch.optim.SGD, params, torch.device("cpu"), lr=0.1) is None


def test_training_a_vae_does_not_import_dynamo():
    """The point of the stand-ins: a default CPU training run never imports torch._dynamo (nor sympy)."""
    code = (
        "import sys, torch, pyrovae\n"
        "x = (torch.rand(64, 16) < 0.3).float()\n"
        "vae = pyrovae.VAE(16, 2, hidden=(8,))\n"
        "pyrovae.fit(vae, x, None, epochs=2, batch_size=16, device='cpu', progress=False, figures=False)\n"
        "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo was imported'\n"
        "assert 'sympy' not in sys.modules, 'sympy was imported'\n"
        "print('ok')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("ok")

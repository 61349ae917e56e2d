"""The fast training step computes what plain Pyro computes (SVI + PyroOptim + Pyro's own ELBO)."""

import pyro
import pytest
import torch

from pyrovae import FAMILIES, VAE, PyroVAEError
from pyrovae.families import closed_form_table
from pyrovae.estimators import ESTIMATORS, estimator
from pyrovae.fastpath import STEPS, EagerFallbackWarning, build_step, make_optimizer, rounding_scale, rounds_alike

N, M, LR = 300, 30, 1e-2
PYRO_ELBOS = {"mc": pyro.infer.Trace_ELBO, "analytic": pyro.infer.TraceMeanField_ELBO}
# "compiled" has its own tests (tests/test_compiled.py): an Inductor compile per case would take minutes.
CPU_STEPS = [name for name in STEPS.names() if name not in ("cuda-graph", "compiled")]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")


def _setup(device="cpu", steps=10, posterior="normal", z_dim=4, **model):
    """A small VAE (fixed initial weights), data, and the minibatch indices of ``steps`` steps."""
    pyro.clear_param_store()
    pyro.set_rng_seed(1)
    x = torch.bernoulli(torch.rand(N, 64)).to(device)
    vae = VAE(64, z_dim, (32,), posterior=posterior, likelihood="bernoulli", **model).to(device)
    g = torch.Generator().manual_seed(3)
    idxs = [torch.randperm(N, generator=g)[:M].to(device) for _ in range(steps)]
    pyro.set_rng_seed(2)  # the estimator's noise
    return vae, x, idxs


def _flat(vae):
    return torch.cat([p.detach().flatten() for p in vae.parameters()])


def _plain_pyro(name, particles, steps, device="cpu"):
    vae, x, idxs = _setup(device, steps)
    loss = PYRO_ELBOS[name](num_particles=particles, vectorize_particles=particles > 1, max_plate_nesting=1)
    svi = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": LR}), loss=loss)
    for idx in idxs:
        svi.step(x, subsample=idx)
    return _flat(vae)


def _pyrovae(step_name, name, particles, steps, device="cpu", posterior="normal", z_dim=4, **model):
    vae, x, idxs = _setup(device, steps, posterior, z_dim, **model)
    dev = torch.device(device)
    optim = make_optimizer(torch.optim.Adam, vae.parameters(), LR, dev, capturable=dev.type == "cuda")
    step = build_step(step_name, vae, estimator(name, particles, max_plate_nesting=1), optim, dev)
    losses = torch.stack([step(x, idx).clone() for idx in idxs])
    return _flat(vae), losses


@pytest.mark.parametrize("steps", [1, 10])
@pytest.mark.parametrize("particles", [1, 8])
@pytest.mark.parametrize("name", ["mc", "analytic"])
@pytest.mark.parametrize("step_name", CPU_STEPS)
def test_same_parameters_as_plain_pyro(float64, step_name, name, particles, steps):
    initial = _flat(_setup()[0])
    ref = _plain_pyro(name, particles, steps)
    ours, _ = _pyrovae(step_name, name, particles, steps)
    assert ref.dtype == torch.float64
    assert (ref - initial).abs().max() > 1e-3  # the parameters did move
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ESTIMATORS.names())
def test_jit_step_equals_eager_step_for_every_estimator(float64, name):
    """Bit for bit: the recording runs the same ops as eager mode, in the same order."""
    particles = 1 if name in ("mc", "analytic", "auto", "stl") else 4
    eager, eager_losses = _pyrovae("eager", name, particles, 5)
    if not getattr(ESTIMATORS[name].cls, "traceable", True):
        with pytest.raises(PyroVAEError, match="cannot record"):
            _pyrovae("jit", name, particles, 5)
        return
    jit, jit_losses = _pyrovae("jit", name, particles, 5)
    assert torch.equal(jit, eager)
    assert torch.equal(jit_losses, eager_losses)


def _family_estimators(name):
    table = closed_form_table()
    return ["mc"] + (["analytic"] if table[name, FAMILIES[name].default_prior] == "yes" else [])


@pytest.mark.parametrize("posterior, name", [(f, e) for f in FAMILIES.names() for e in _family_estimators(f)])
def test_jit_step_records_and_equals_eager_for_every_family(float64, posterior, name):
    """Every registered posterior family (with its default prior) trains on the recorded step.

    ``step="jit"`` raises rather than falling back, so this fails for a family whose sampler or
    KL a recording would change (torch's Laplace draw and MVN KL once did)."""
    eager, eager_losses = _pyrovae("eager", name, 1, 3, posterior=posterior)
    jit, jit_losses = _pyrovae("jit", name, 1, 3, posterior=posterior)
    assert torch.equal(jit, eager)
    assert torch.equal(jit_losses, eager_losses)


#: Models beyond an MLP under a fixed prior: the conv networks (the 64 columns as 8x8 images), the VampPrior.
MODELS = {"conv": ("analytic", {"arch": "conv", "image_shape": (8, 8)}), "vamp": ("auto", {"prior": "vamp"}),
          "vamp-iaf": ("mc", {"prior": "vamp", "posterior": "iaf"})}


@pytest.mark.parametrize("model", MODELS)
def test_jit_step_records_and_equals_eager_for_every_model(float64, model):
    """The conv architecture and the VampPrior (its pseudo-inputs through the encoder) record too."""
    name, options = MODELS[model]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions wait for a busy core with 2 threads on a loaded machine
    try:
        eager, eager_losses = _pyrovae("eager", name, 1, 3, **options)
        jit, jit_losses = _pyrovae("jit", name, 1, 3, **options)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(jit, eager)
    assert torch.equal(jit_losses, eager_losses)


@pytest.mark.parametrize("posterior, name", [("normal", e) for e in ESTIMATORS.names() if e != "analytic"
                                              and getattr(ESTIMATORS[e].cls, "traceable", True)]
                         + [(f, "mc") for f in ("gamma", "iaf-global")])
def test_jit_step_equals_eager_for_a_two_layer_vae(float64, posterior, name):
    """Several stochastic layers (sites z1, z2) record and train bit for bit like eager mode.

    Also an implicitly reparameterized family and a flow; ``analytic`` refuses the bottom-up guide's z1."""
    particles = 4 if name in ("iwae", "dreg") else 1
    eager, eager_losses = _pyrovae("eager", name, particles, 3, posterior=posterior, z_dim=(4, 3))
    jit, jit_losses = _pyrovae("jit", name, particles, 3, posterior=posterior, z_dim=(4, 3))
    assert torch.equal(jit, eager)
    assert torch.equal(jit_losses, eager_losses)


def test_step_loss_is_the_estimators_loss(float64):
    """The returned loss is the value of differentiable_loss, not a frozen trace-time constant."""
    vae, x, idxs = _setup(steps=3)
    est = estimator("mc", 1, max_plate_nesting=1)
    step = build_step("jit", vae, est, make_optimizer(torch.optim.SGD, vae.parameters(), 0.0, torch.device("cpu")),
                      torch.device("cpu"))
    for idx in idxs:
        state = torch.get_rng_state()
        expected = est.differentiable_loss(vae.model, vae.guide, x, subsample=idx)
        torch.set_rng_state(state)
        assert torch.allclose(step(x, idx), expected.detach(), rtol=1e-12)


def test_jit_records_one_graph_per_minibatch_shape(float64):
    vae, x, _ = _setup()
    step = build_step("jit", vae, estimator("analytic"), make_optimizer(
        torch.optim.Adam, vae.parameters(), LR, torch.device("cpu")), torch.device("cpu"))
    for size in (30, 30, 7, 30, 7):
        step(x, torch.arange(size))
    assert len(step._compiled) == 2


def test_jit_refuses_parameters_outside_the_module():
    vae, x, idxs = _setup()

    def stray_guide(x, subsample=None):
        pyro.param("stray", torch.zeros(()))
        return vae.guide(x, subsample=subsample)

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = vae

        model = staticmethod(vae.model)
        guide = staticmethod(stray_guide)

    wrapped = Wrapped()
    step = build_step("jit", wrapped, estimator("mc"), torch.optim.Adam(wrapped.parameters()), torch.device("cpu"))
    with pytest.raises(PyroVAEError, match="stray"):
        step(x, idxs[0])


class _DataDependent(VAE):
    """A model whose Python reads a data value: a recording would freeze it."""

    def model(self, x, y=None, subsample=None):
        with pyro.poutine.scale(scale=float(x[subsample].mean())):
            return super().model(x, y, subsample)


def _one_step(step_name, vae, x, idx, name="mc"):
    dev = torch.device("cpu")
    step = build_step(step_name, vae, estimator(name), make_optimizer(torch.optim.Adam, vae.parameters(), LR, dev), dev)
    return step, step(x, idx)


def test_a_recording_that_froze_data_is_caught(float64):
    _, x, idxs = _setup()
    with pytest.raises(PyroVAEError, match="differ from eager"):
        _one_step("jit", _DataDependent(64, 4, (32,)), x, idxs[0])
    with pytest.warns(EagerFallbackWarning, match="running it eagerly"):
        step, loss = _one_step("auto", _DataDependent(64, 4, (32,)), x, idxs[0])
    assert step._eager and torch.isfinite(loss)


@pytest.mark.parametrize("dtype, rounding", [(torch.float32, 2e-5), (torch.float64, 1e-12)])
def test_the_recording_check_admits_rounding_and_refuses_real_differences(dtype, rounding):
    """A compiled graph that reorders sums differs by a few ulps of the largest gradient (float32
    IWAE gradients of 30 moved by 2e-5 under Inductor); a wrong recording differs at 1e-3 and more."""
    g = torch.Generator().manual_seed(0)
    grads = torch.randn(16, 32, generator=g, dtype=dtype)
    grads = 12 * grads / grads.abs().max()
    grads[0, 0] = 0.0  # rounding where the gradient is near 0 is not relative to that entry
    noise = torch.randn(16, 32, generator=g, dtype=dtype).sign()
    assert rounds_alike(grads, grads + rounding * noise)
    assert not rounds_alike(grads, grads * (1 + 1e-3 * noise))
    assert not rounds_alike(grads, grads.roll(1, 0))
    assert rounding_scale(torch.float64) == 1e-6 and rounding_scale(torch.float32) == pytest.approx(1.19e-5, rel=1e-2)


class _FullCovariancePrior(torch.nn.Module):
    """A ``MultivariateNormal(0, I)`` prior: torch's MVN-MVN KL infers shapes from tensors."""

    def forward(self, y=None):
        return pyro.distributions.MultivariateNormal(torch.zeros(4), torch.eye(4))


def test_untraceable_model_runs_eagerly_under_auto(float64):
    """torch's MVN-MVN KL cannot be recorded; auto trains such a model eagerly, jit says why not."""
    _, x, idxs = _setup()

    def vae():
        model = VAE(64, 4, (32,), posterior="full-normal")
        model.prior = _FullCovariancePrior()
        return model

    with pytest.raises(PyroVAEError, match="cannot record this model: RuntimeError"):
        _one_step("jit", vae(), x, idxs[0], "analytic")
    with pytest.warns(EagerFallbackWarning, match="cannot record"):
        step, loss = _one_step("auto", vae(), x, idxs[0], "analytic")
    assert step._eager and torch.isfinite(loss)


def test_fused_optimizer_where_torch_has_one():
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert make_optimizer(torch.optim.Adam, params, 1e-3, torch.device("cpu")).defaults["fused"]
    assert make_optimizer(torch.optim.SGD, params, 1e-3, torch.device("cpu")).defaults["lr"] == 1e-3


def test_unknown_step_name_suggests():
    vae, _, _ = _setup()
    with pytest.raises(PyroVAEError, match="did you mean 'jit'"):
        build_step("jitt", vae, estimator("mc"), torch.optim.Adam(vae.parameters()), torch.device("cpu"))


@needs_cuda
@pytest.mark.parametrize("particles", [1, 8])
@pytest.mark.parametrize("name", ["mc", "analytic"])
def test_cuda_graph_step_matches_plain_pyro_on_cuda(name, particles):
    ref = _plain_pyro(name, particles, 10, device="cuda")
    ours, _ = _pyrovae("cuda-graph", name, particles, 10, device="cuda")
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("conditional", ["prior", "full"])
def test_jit_step_with_labels_equals_eager(float64, conditional):
    """Labels are graph inputs like x: a conditional VAE records and matches eager bit for bit."""
    out = {}
    for name in ("eager", "jit"):
        vae, x, idxs = _setup(steps=4)
        torch.manual_seed(5)
        vae = VAE(64, 4, (32,), conditional=conditional, num_classes=3)
        y = torch.arange(N) % 3
        dev = torch.device("cpu")
        step = build_step(name, vae, estimator("analytic"), make_optimizer(torch.optim.Adam, vae.parameters(), LR, dev),
                          dev)
        losses = torch.stack([step(x, idx, y=y) for idx in idxs])
        out[name] = (_flat(vae), losses)
    assert torch.equal(out["jit"][0], out["eager"][0]) and torch.equal(out["jit"][1], out["eager"][1])


def test_a_new_kl_weight_gets_a_new_recording(float64):
    vae, x, idxs = _setup()
    step, _ = _one_step("jit", vae, x, idxs[0], "analytic")
    with vae.kl_weighted(0.5):
        half = step.loss(x, idxs[1])
    full = step.loss(x, idxs[1])
    assert len(step._compiled) == 2 and not torch.equal(half, full)


def test_the_recording_gathers_the_minibatch_once():
    """Model and guide both read x[idx]; the simplified recording keeps one gather and no dead ops."""
    vae, x, idxs = _setup()
    optim = make_optimizer(torch.optim.Adam, vae.parameters(), LR, torch.device("cpu"))
    step = build_step("jit", vae, estimator("mc", 1, max_plate_nesting=1), optim, torch.device("cpu"))
    step(x, idxs[0])
    (recording,) = step._compiled.values()
    kinds = [node.kind() for node in recording.graph.nodes()]
    assert kinds.count("aten::index") == 1
    assert kinds.count("aten::normal") == 1  # the one random draw is kept


def _write_through_view(b):
    b.view(-1)[:3].mul_(2.0)


def _write_through_unbind(b):
    b.unbind(0)[0].mul_(2.0)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated:FutureWarning")
@pytest.mark.parametrize("write", [_write_through_view, _write_through_unbind])
def test_a_gather_written_through_a_view_is_not_merged(write):
    """x[idx] twice, one copy then written in place through a view: both copies must stay."""
    from pyrovae.fastpath import _simplify

    def f(x, idx):
        a, b = x[idx], x[idx]
        write(b)
        return a.sum() * 10 + b.sum()

    x, idx = torch.arange(12.0).reshape(4, 3), torch.tensor([2, 0])
    recording = torch.jit.trace(f, (x, idx), check_trace=False)
    _simplify(recording.graph)
    assert [n.kind() for n in recording.graph.nodes()].count("aten::index") == 2
    assert torch.equal(recording(x, idx), f(x, idx))

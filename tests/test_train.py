"""fit(): learning on real digits, exact resume, divergence handling and input validation."""

import json
import re

import pytest
import torch

from pyrovae import VAE, PyroVAEError, RunFolder, fit, load_dataset
from pyrovae import DivergenceError


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist-5k", binarize="dynamic", seed=0)


def test_training_learns_mnist_5k(mnist):
    """784-400-20, M=100, Adam 1e-3, dynamic binarization: 20 epochs reach >= -120 nats (3-seed mean)."""
    finals = []
    for seed in range(3):
        torch.manual_seed(seed)
        vae = VAE(784, 20, hidden=(400,))
        result = fit(vae, mnist.train, mnist.test, estimator="analytic", epochs=20, batch_size=100,
                     lr=1e-3, seed=seed, dynamic_binarization=True, device="cpu", progress=False)
        curve = [r["test_elbo"] for r in result.metrics]
        assert curve[-1] > curve[0] + 50  # a real improvement, not noise
        finals.append(curve[-1])
    assert sum(finals) / 3 >= -120, finals
    assert min(finals) >= -121.5, finals


def _small_run(mnist, out, epochs, resume=False, **kw):
    torch.manual_seed(123)  # the same initial weights for every call
    vae = VAE(784, 5, hidden=(32,))
    return fit(vae, mnist.train[:600], mnist.test[:100], epochs=epochs, batch_size=50, seed=7,
               dynamic_binarization=True, device="cpu", progress=False, out=out, resume=resume, figures=False, **kw)


@pytest.mark.parametrize("estimator", ["mc", "analytic"])
def test_resume_equals_uninterrupted_run(mnist, tmp_path, estimator):
    full = _small_run(mnist, tmp_path / "full", 4, estimator=estimator)
    _small_run(mnist, tmp_path / "part", 2, estimator=estimator)
    resumed = _small_run(mnist, tmp_path / "part", 4, resume=True, estimator=estimator)
    a, b = full.vae.state_dict(), resumed.vae.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    timeless = [[{k: v for k, v in r.items() if k != "seconds"} for r in m.metrics] for m in (full, resumed)]
    assert timeless[0] == timeless[1]  # every epoch's numbers, bit for bit
    assert [r["epoch"] for r in resumed.metrics] == [1, 2, 3, 4]


@pytest.mark.parametrize("name", ["iwae", "dreg"])
def test_importance_weighted_runs_record_their_bound_and_the_elbo_apart(mnist, name):
    """The loss of iwae/dreg estimates the IWAE bound, not the ELBO: the records say which is which."""
    torch.manual_seed(0)
    result = fit(VAE(784, 3, hidden=(16,)), mnist.train[:300], mnist.test[:100], estimator=name, num_particles=5,
                 epochs=2, batch_size=50, seed=4, dynamic_binarization=True, device="cpu", progress=False)
    last = result.metrics[-1]
    assert {"train_iwae", "test_iwae", "test_elbo"} <= set(last) and "train_elbo" not in last
    assert last["test_iwae"] > last["test_elbo"]  # the K=5 bound is the tighter one (Burda et al. 2015, thm. 1)


def test_run_folder_contents(mnist, tmp_path):
    result = _small_run(mnist, tmp_path / "run", 2)
    folder = RunFolder(tmp_path / "run")
    records = json.loads(folder.metrics.read_text())
    assert [r["epoch"] for r in records] == [1, 2]
    assert set(records[0]) == {"epoch", "samples_seen", "train_elbo", "test_elbo", "test_kl", "test_recon",
                               "seconds"}
    assert records[1]["samples_seen"] == 1200
    summary = json.loads(folder.summary.read_text())
    assert set(summary["test_elbo"]) == {"mc", "analytic"} and summary["device"] == "cpu"
    assert summary["test_elbo"] == result.summary["test_elbo"]
    assert "model" in folder.load_checkpoint()


def test_existing_folder_is_never_overwritten(mnist, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(PyroVAEError, match="already exists"):
        _small_run(mnist, out, 1)
    assert (out / "precious.txt").read_text() == "keep me" and len(list(out.iterdir())) == 1


def test_divergence_names_the_step_and_keeps_the_checkpoint(mnist, tmp_path):
    out = tmp_path / "run"
    _small_run(mnist, out, 1)
    before = RunFolder(out).load_checkpoint()
    with pytest.raises(DivergenceError, match=r"at epoch 2, step \d+"):
        torch.manual_seed(123)
        vae = VAE(784, 5, hidden=(32,))
        vae.load_state_dict(before["model"])
        fit(vae, mnist.train[:600], mnist.test[:100], epochs=2, batch_size=50, lr=1e6, device="cpu",
            progress=False, out=out, resume=True)
    after = RunFolder(out).load_checkpoint()
    assert after["epoch"] == 1 and all(torch.equal(before["model"][k], after["model"][k]) for k in before["model"])


@pytest.mark.parametrize("data, kwargs, match", [
    (torch.full((10, 784), float("nan")), {}, "NaN"),
    (torch.full((10, 784), 3.0), {}, "outside the support of the 'bernoulli'"),
    (torch.rand(10, 783), {}, r"shape \(N, 784\)"),
    (torch.rand(10, 784), {"batch_size": 11}, "larger than the 10 training points"),
    (torch.rand(10, 784), {"epochs": 0}, "epochs must be a positive integer"),
    (torch.rand(10, 784), {"lr": -1.0}, "lr must be positive"),
    (torch.rand(10, 784), {"optimizer": "adamm"}, "did you mean 'adam'"),
    (torch.rand(10, 784), {"device": "tpu"}, "unknown device"),
])
def test_bad_fit_input(data, kwargs, match):
    with pytest.raises(PyroVAEError, match=match):
        fit(VAE(784, 2, hidden=(8,)), data, **{"batch_size": 5, "progress": False, "device": "cpu", **kwargs})


def test_adagrad_the_papers_optimizer_learns(mnist):
    vae = VAE(784, 10, hidden=(100,), activation="tanh")
    result = fit(vae, mnist.train[:1000], mnist.test[:200], optimizer="adagrad", lr=0.02, epochs=3,
                 device="cpu", progress=False, dynamic_binarization=True)
    assert result.metrics[-1]["test_elbo"] > result.metrics[0]["test_elbo"] + 10


def test_fit_folder_reopens_with_its_own_config(mnist, tmp_path):
    """A run written by fit() from Python records a RunConfig; load_run explains what it cannot rebuild."""
    from pyrovae import RunConfig, load_run

    _small_run(mnist, tmp_path / "run", 1)
    config = RunConfig.from_dict(RunFolder(tmp_path / "run").read_config())
    assert (config.dataset, config.latent_dim, config.hidden, config.binarize) == (None, 5, (32,), "dynamic")
    with pytest.raises(PyroVAEError, match="in-memory data"):
        load_run(tmp_path / "run")


def test_divergence_in_first_epoch_leaves_no_folder(mnist, tmp_path):
    with pytest.raises(DivergenceError, match="nothing was saved"):
        fit(VAE(784, 5, hidden=(32,)), mnist.train[:600], epochs=1, batch_size=50, lr=1e6, device="cpu",
            progress=False, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_resume_cannot_shrink_a_run(mnist, tmp_path):
    _small_run(mnist, tmp_path / "run", 2)
    with pytest.raises(PyroVAEError, match="already has 2 epochs"):
        _small_run(mnist, tmp_path / "run", 1, resume=True)


def test_every_estimator_sees_the_same_minibatches(mnist, monkeypatch):
    """Data order and binarization come from their own seeded stream, not the estimator's noise."""
    from pyrovae.training.loop import Loop

    seen = {}
    original = Loop.take_step

    def recording(self, x, idx, **labels):
        seen.setdefault(self.options.estimator, []).append((idx.clone(), x[idx].sum().item()))
        return original(self, x, idx, **labels)

    monkeypatch.setattr(Loop, "take_step", recording)
    for name, particles in (("mc", 1), ("iwae", 5)):
        torch.manual_seed(0)
        fit(VAE(784, 3, hidden=(16,)), mnist.train[:300], estimator=name, num_particles=particles, epochs=2,
            batch_size=50, seed=4, dynamic_binarization=True, device="cpu", progress=False)
    a, b = seen.values()
    assert len(a) == len(b) == 12
    assert all(torch.equal(i, j) and s == t for (i, s), (j, t) in zip(a, b))


# -- checkpoints inside an epoch, gradient clipping, naming the bad step -------------------------


def _stop_at(monkeypatch, steps):
    """Make ``Loop.take_step`` raise KeyboardInterrupt at the given call numbers (1-based, over the test)."""
    from pyrovae.training.loop import Loop

    original, calls = Loop.take_step, [0]

    def step(self, x, idx, **labels):
        calls[0] += 1
        if calls[0] in steps:
            raise KeyboardInterrupt
        return original(self, x, idx, **labels)

    monkeypatch.setattr(Loop, "take_step", step)


def _tiny_run(out, epochs, resume=False, **kw):
    """12 steps an epoch on 240 grey-level rows of 20 pixels, binarized afresh every epoch."""
    torch.manual_seed(123)
    x = torch.rand(240, 20, generator=torch.Generator().manual_seed(1))
    return fit(VAE(20, 2, hidden=(8,)), x, x[:40].round(), epochs=epochs, batch_size=20, seed=7,
               dynamic_binarization=True, device="cpu", progress=False, out=out, resume=resume, figures=False, **kw)


def test_resume_from_inside_an_epoch_equals_uninterrupted_run(tmp_path, monkeypatch):
    """Interrupted at step 17 (epoch 2 of 12-step epochs) and again 8 steps into the resume."""
    full = _tiny_run(tmp_path / "full", 3, checkpoint_every=5)
    _stop_at(monkeypatch, {17, 17 + 8})
    for resume in (False, True):
        with pytest.raises(KeyboardInterrupt):
            _tiny_run(tmp_path / "part", 3, resume=resume, checkpoint_every=5)
    state = RunFolder(tmp_path / "part").load_checkpoint()
    # The first stretch saved at step 15; the resume redid 16 and stopped before its 8th step, at 23.
    assert (state["epoch"], state["step"]) == (1, 20 - 12)
    resumed = _tiny_run(tmp_path / "part", 3, resume=True, checkpoint_every=5)
    a, b = full.vae.state_dict(), resumed.vae.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    timeless = [[{k: v for k, v in r.items() if k != "seconds"} for r in m.metrics] for m in (full, resumed)]
    assert timeless[0] == timeless[1]


def test_gradient_clipping_bounds_every_update(monkeypatch):
    from pyrovae.training.loop import Loop

    norms = []
    original = Loop.take_step

    def step(self, x, idx, **labels):
        loss = original(self, x, idx, **labels)
        norms.append(float(torch.stack([p.grad.norm() for p in self.guard.params if p.grad is not None]).norm()))
        return loss

    monkeypatch.setattr(Loop, "take_step", step)
    result = _tiny_run(None, 1, clip_grad_norm=0.5)
    assert len(norms) == 12 and max(norms) <= 0.5 * (1 + 1e-5)
    assert result.summary["epochs"] == 1


def test_absurd_lr_names_step_and_term_and_keeps_the_step_checkpoint(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(DivergenceError) as info:
        _tiny_run(out, 2, lr=1e6, checkpoint_every=1)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(r"(loss became (nan|inf|-inf)|gradients became non-finite|parameters became non-finite) "
                     r"at epoch 1, step (\d+): ", message), message
    step = int(re.search(r"step (\d+):", message).group(1))
    assert re.search(r"(KL term at site 'z'|reconstruction term log p\(x\|z\)) is (nan|inf|-inf)"
                     r"|non-finite gradients in (encoder|decoder)|update of", message), message
    assert f"the checkpoint at epoch 1, step {step - 1} is kept" in message
    state = RunFolder(out).load_checkpoint()
    assert (state["epoch"], state["step"]) == (0, step - 1)
    assert all(torch.isfinite(v).all() for v in state["model"].values())


@pytest.mark.parametrize("conditional", ["prior", "full"])
def test_divergence_of_a_conditional_vae_names_the_term(conditional):
    """The replay that explains a divergence traces the ELBO terms with the run's labels too."""
    torch.manual_seed(123)
    x = torch.rand(240, 20, generator=torch.Generator().manual_seed(1)).round()
    y = torch.arange(240) % 4
    vae = VAE(20, 2, hidden=(8,), conditional=conditional, num_classes=4)
    with pytest.raises(DivergenceError) as info:
        fit(vae, x, epochs=2, batch_size=20, lr=1e6, seed=7, device="cpu", progress=False, train_labels=y)
    message = str(info.value)
    assert "could not be evaluated" not in message, message
    assert re.search(r"(KL term at site 'z'|reconstruction term log p\(x\|z\)) is (nan|inf|-inf)"
                     r"|non-finite gradients in |update of|estimator's own combination", message), message


def test_a_non_finite_gradient_is_found_at_its_step(monkeypatch):
    """The loss stays finite; the decoder's gradient is NaN whenever row 7 is in the minibatch."""
    from pyrovae.training.loop import Loop

    batches, original = [], Loop.take_step

    def step(self, x, idx, **labels):
        batches.append(bool((idx == 7).any()))
        poison = [p.register_hook(lambda g: g * float("nan")) for p in self.model.decoder.parameters()] \
            if batches[-1] else []
        try:
            return original(self, x, idx, **labels)
        finally:
            for handle in poison:
                handle.remove()

    monkeypatch.setattr(Loop, "take_step", step)
    with pytest.raises(DivergenceError) as info:
        _tiny_run(None, 1)
    first = batches.index(True) + 1
    assert f"gradients became non-finite at epoch 1, step {first}: the loss" in str(info.value)
    assert "non-finite gradients in decoder" in str(info.value) and "encoder" not in str(info.value)


def test_config_round_trip_with_reliability_fields():
    from pyrovae import RunConfig

    config = RunConfig(clip_grad_norm=5.0, checkpoint_every=100)
    assert RunConfig.from_dict(config.to_dict()) == config
    old = {k: v for k, v in RunConfig().to_dict().items() if k not in ("clip_grad_norm", "checkpoint_every")}
    assert RunConfig.from_dict(old) == RunConfig()  # config.json files from before these fields
    assert config.conflicts({"checkpoint_every": 7, "clip_grad_norm": 1.0}) == {"clip_grad_norm": (5.0, 1.0)}

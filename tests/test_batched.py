"""Batched runs: each run of a batched grid ends with the parameters it gets when ``fit`` trains it alone."""

import pyro
import pytest
import torch

from pyrovae import VAE
from pyrovae.batched import BATCHED_ELBOS, BatchedRuns
from pyrovae.errors import PyroVAEError
from pyrovae.training import fit
from pyrovae.training.budget import Budget
from pyrovae.training.denormals import flushing_denormals

ROWS, DIM, BATCH = 60, 10, 6  # ten steps per epoch


def _vae(seed):
    pyro.set_rng_seed(seed)  # each run's initial weights, as compare builds them
    return VAE(DIM, 2, (7,), "tanh").double()


@pytest.fixture(scope="module")
def grey():
    return torch.rand(ROWS, DIM, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize("optimizer, dynamic", [("adagrad", True), ("adam", False)])
def test_each_batched_run_matches_the_run_alone(grey, optimizer, dynamic):
    """float64, ten steps: mixed estimators and seeds in one batch, each against fit alone."""
    x = grey if dynamic else torch.bernoulli(grey, generator=torch.Generator().manual_seed(1))
    runs = [(est, seed) for est in BATCHED_ELBOS.names() for seed in (0, 3)]
    batched = BatchedRuns([_vae(s) for _, s in runs], [e for e, _ in runs], [s for _, s in runs], x,
                          batch_size=BATCH, optimizer=optimizer, lr=0.05, dynamic=dynamic)
    losses = batched.train(Budget(1, None, ROWS, BATCH))
    for r, (est, seed) in enumerate(runs):
        alone = fit(_vae(seed), x, estimator=est, epochs=1, batch_size=BATCH, optimizer=optimizer, lr=0.05,
                    seed=seed, dynamic_binarization=dynamic, device="cpu", progress=False, figures=False)
        mine = batched.vaes[r].state_dict()
        for name, value in alone.vae.state_dict().items():
            torch.testing.assert_close(mine[name], value, rtol=0, atol=1e-6, msg=f"{est} seed {seed}: {name}")
        assert -losses[0][:, r].mean().item() / ROWS == pytest.approx(alone.metrics[0]["train_elbo"], abs=1e-6)


def test_a_samples_budget_stops_inside_an_epoch(grey):
    x = torch.bernoulli(grey, generator=torch.Generator().manual_seed(1))
    batched = BatchedRuns([_vae(0)], ["mc"], [0], x, batch_size=BATCH)
    losses = batched.train(Budget(1, 100, ROWS, BATCH))
    assert [len(epoch) for epoch in losses] == [10, 7]  # 60 + 42 rows: the first step past 100 samples


def test_models_the_batch_cannot_train_are_refused(grey):
    with pytest.raises(PyroVAEError, match="batched runs train the AEVB paper's model"):
        BatchedRuns([VAE(DIM, 2, (7,), likelihood="normal")], ["mc"], [0], grey)
    with pytest.raises(PyroVAEError, match="unknown batched estimator 'iwae'"):
        BatchedRuns([_vae(0)], ["iwae"], [0], grey)


def test_a_batched_comparison_has_the_records_of_a_sequential_one(tmp_path):
    """compare(batched=True) on the CPU, float32: the same curves and final numbers as run by run."""
    import numpy as np

    from pyrovae.compare import compare
    from pyrovae.data import load_dataset

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tiny.npz", x_train=(rng.random((240, 12)) < 0.3).astype("float32"),
             x_test=(rng.random((60, 12)) < 0.3).astype("float32"))
    data = load_dataset(str(tmp_path / "tiny.npz"), binarize="none")
    kw = dict(seeds=2, samples=500, batch_size=40, curve_points=4, grad_points=1, ll_samples=5, grad_repeats=3,
              device="cpu")
    alone, together = (compare(data, ["mc", "analytic"], [2], batched=b, **kw)["runs"] for b in (False, True))
    for a, b in zip(alone, together):
        assert (a["estimator"], a["seed"]) == (b["estimator"], b["seed"]) and b["batched"] == 4
        assert [c["samples_seen"] for c in a["curve"]] == [c["samples_seen"] for c in b["curve"]]
        for key in ("test_elbo", "train_elbo"):
            assert [c[key] for c in b["curve"]] == pytest.approx([c[key] for c in a["curve"]], abs=1e-4)
        assert b["log_likelihood"] == pytest.approx(a["log_likelihood"], abs=1e-4)
        assert set(b["gradients"]) == set(a["gradients"])


@pytest.mark.parametrize("keep", [False, True])
def test_batched_training_flushes_subnormals_as_fit_does(grey, keep):
    """Subnormals are flushed while the batch trains on a CPU (as fit flushes them for a run
    alone) unless kept, and the caller's mode is back afterwards."""
    seen = []
    x = torch.bernoulli(grey, generator=torch.Generator().manual_seed(1))
    batched = BatchedRuns([_vae(0)], ["mc"], [0], x, batch_size=BATCH, keep_denormals=keep)
    batched.train(Budget(1, None, ROWS, BATCH), frozenset({3}), lambda step: seen.append(flushing_denormals()))
    assert seen == [not keep] and not flushing_denormals()

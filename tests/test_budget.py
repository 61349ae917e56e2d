"""Budgets in training samples and learning curves at log-spaced points (``fit(samples=..., curve_points=...)``)."""

import argparse

import pyro
import pytest
import torch

from pyrovae import VAE
from pyrovae.errors import PyroVAEError
from pyrovae.options import count
from pyrovae.training import fit
from pyrovae.training.budget import Budget


def test_budget_counts_rows_over_epochs_with_a_short_last_minibatch():
    budget = Budget(epochs=3, samples=None, rows=250, batch_size=100)  # 100 + 100 + 50 rows an epoch
    assert budget.steps_per_epoch == 3 and budget.total_steps == 9
    assert [budget.samples_after(s) for s in (1, 2, 3, 4)] == [100, 200, 250, 350]
    by_samples = Budget(epochs=3, samples=600, rows=250, batch_size=100)  # 2 epochs (500) + 1 step: 600
    assert by_samples.total_steps == 7 and by_samples.samples_after(7) == 600
    assert [by_samples.steps_in(e) for e in range(4)] == [3, 3, 1, 0]
    assert Budget(1, 601, 250, 100).samples_after(Budget(1, 601, 250, 100).total_steps) == 700  # the first past S


def test_points_are_log_spaced_and_end_at_the_budget():
    points = sorted(Budget(1, None, 100_000, 100).points(4))  # 1000 steps: 1, 10, 100, 1000
    assert points == [1, 10, 100, 1000]
    assert sorted(Budget(1, None, 300, 100).points(10)) == [1, 2, 3]  # coinciding points collapse
    assert Budget(1, None, 300, 100).points(0) == frozenset()


def test_samples_on_the_command_line():
    assert count("3e6") == 3_000_000 and count("1500") == 1500
    for bad in ("2.5", "many"):
        with pytest.raises(argparse.ArgumentTypeError):
            count(bad)


@pytest.fixture(scope="module")
def rows():
    return torch.bernoulli(torch.rand(130, 6, generator=torch.Generator().manual_seed(0)),
                           generator=torch.Generator().manual_seed(1))


def _fit(rows, **kw):
    pyro.set_rng_seed(0)
    return fit(VAE(6, 2, (5,)), rows[:100], rows[100:], estimator="mc", batch_size=20, seed=2, progress=False,
               figures=False, curve_points=5, **kw)


def test_a_samples_budget_stops_inside_an_epoch_and_resumes_exactly(rows, tmp_path):
    whole = _fit(rows, samples=260)  # 2 epochs of 100 rows and 3 steps of the third
    assert whole.summary["samples_seen"] == 260 and len(whole.metrics) == 2
    assert [p["samples_seen"] for p in whole.curve] == [20, 40, 80, 140, 260]
    assert all(p["train_elbo"] < 0 and p["test_elbo"] < 0 for p in whole.curve)
    _fit(rows, samples=130, out=str(tmp_path / "run"))  # stops inside the second epoch, checkpointed there
    with pytest.raises(PyroVAEError, match="already has 140 training samples; ask for at least 140"):
        _fit(rows, samples=100, out=str(tmp_path / "run"), resume=True)
    resumed = _fit(rows, samples=260, out=str(tmp_path / "run"), resume=True)
    for name, value in whole.vae.state_dict().items():
        assert torch.equal(resumed.vae.state_dict()[name], value), name
    strip = [{k: v for k, v in p.items() if k != "seconds"} for p in whole.curve]
    # The points of the first budget up to its end, then those of the new one: where both have a point,
    # it is the same record, since the runs are the same.
    assert [p["samples_seen"] for p in resumed.curve] == [20, 40, 60, 80, 140, 260]
    assert [p for p in resumed.curve if p["samples_seen"] != 60] == strip

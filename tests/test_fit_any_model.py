"""``fit`` trains any Pyro model: factor analysis with an amortized guide, written here, not a ``VAE``.

Every estimator trains it (the exact marginal likelihood rises and the test ELBO stays below it),
an interrupted run resumes bit for bit, and the VAE-only parts (beta, data checks) say so in one
line. Its 2-rank torchrun run is in tests/test_distributed.py (the ``factor-analysis`` grid entry).
"""

import pytest
import torch

from pyrovae import ESTIMATORS, PyroVAEError, RunFolder, fit
from pyrovae.training import TrainableModel
from pyrovae.training.loop import Loop

from fa_model import FactorAnalysis, simulate


@pytest.fixture(scope="module")
def rows():
    x = simulate(400)
    return x[:300], x[300:]


def _fa(seed: int = 0) -> FactorAnalysis:
    torch.manual_seed(seed)
    return FactorAnalysis(6, 2).double()


def _fit(model, rows, out=None, **kw):
    train, test = rows
    options = dict(epochs=8, batch_size=50, lr=0.05, seed=3, device="cpu")
    return fit(model, train, test, progress=False, out=out, **{**options, **kw})


def test_the_module_follows_the_protocol():
    assert isinstance(_fa(), TrainableModel)


@pytest.mark.parametrize("name", ESTIMATORS.names())
def test_every_estimator_trains_factor_analysis(rows, name):
    fa = _fa()
    before = fa.exact_log_likelihood(rows[1])
    result = _fit(fa, rows, estimator=name, num_particles=4 if name in ("iwae", "dreg") else 1)
    after = fa.exact_log_likelihood(rows[1])
    elbo = result.metrics[-1]["test_elbo"]
    assert after > before + 1.0, (before, after)
    # A lower bound (to Monte-Carlo error), above where the model started. The IWAE bound loosens
    # the guide's own ELBO (Rainforth et al. 2018), so only the ELBO-trained ones must be tight.
    tight = 1.0 if name not in ("iwae", "dreg") else after - before
    assert after - tight < elbo < after + 0.1, (elbo, before, after)
    assert result.model is fa and result.summary["epochs"] == 8


def test_factor_analysis_resumes_bit_for_bit(rows, tmp_path, monkeypatch):
    """Interrupted at step 9 (epoch 2 of 6-step epochs, after the checkpoint at step 8), then resumed."""
    full = _fit(_fa(), rows, tmp_path / "full", epochs=3, checkpoint_every=4)
    original, calls = Loop.take_step, [0]

    def stop_at_nine(self, x, idx, **labels):
        calls[0] += 1
        if calls[0] == 9:
            raise KeyboardInterrupt
        return original(self, x, idx, **labels)

    monkeypatch.setattr(Loop, "take_step", stop_at_nine)
    with pytest.raises(KeyboardInterrupt):
        _fit(_fa(), rows, tmp_path / "part", epochs=3, checkpoint_every=4)
    monkeypatch.setattr(Loop, "take_step", original)
    state = RunFolder(tmp_path / "part").load_checkpoint()
    assert (state["epoch"], state["step"]) == (1, 2)
    resumed = _fit(_fa(seed=99), rows, tmp_path / "part", epochs=3, checkpoint_every=4, resume=True)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    timeless = [[{k: v for k, v in r.items() if k != "seconds"} for r in m.metrics] for m in (full, resumed)]
    assert timeless[0] == timeless[1]
    config = RunFolder(tmp_path / "full").read_config()
    assert config["model"] == "FactorAnalysis" and config["dataset"] is None and config["checkpoint_every"] == 4


def test_figures_are_drawn_where_they_apply_and_a_note_says_why_not(rows, tmp_path):
    """fit draws a VAE's figures from memory (no run folder reload); for another model the report says why not."""
    from pyrovae import VAE

    train, test = (x.float().sigmoid().round() for x in rows)
    torch.manual_seed(0)
    result = fit(VAE(6, 2, hidden=(8,)), train, test, epochs=2, batch_size=50, device="cpu", progress=False,
                 out=tmp_path / "vae")
    assert {"latent", "kl", "curves"} <= set(result.files) and "recon" not in result.files  # no image shape
    assert all((tmp_path / "vae" / f"{kind}.png").is_file() for kind in ("latent", "kl", "curves"))
    fa = _fit(_fa(), rows, tmp_path / "fa", epochs=1)
    assert set(fa.files) == {"report"} and "FactorAnalysis is not one" in fa.summary["figures"]
    assert "FactorAnalysis is not one" in (tmp_path / "fa" / "report.md").read_text()


def test_what_needs_a_vae_is_refused_in_one_line(rows):
    with pytest.raises(PyroVAEError, match="beta and the KL warm-up need a model with a KL weight.*FactorAnalysis"):
        _fit(_fa(), rows, beta=2.0)
    with pytest.raises(PyroVAEError, match="the Linear given has no model or guide method"):
        fit(torch.nn.Linear(2, 2), rows[0])
    with pytest.raises(PyroVAEError, match="unknown training option particles"):
        _fit(_fa(), rows, particles=3)

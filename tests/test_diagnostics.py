"""Gradient diagnostics and active units, checked where the theory fixes the answer."""

import torch

from pyrovae import VAE
from pyrovae.diagnostics import active_units, gradient_samples, gradient_variance, summarize, variance_ratio


def test_stl_encoder_variance_is_zero_at_the_true_posterior(ppca_setup):
    ppca, x, vae, exact = ppca_setup
    stl = gradient_variance(vae, x[:50], "stl", repeats=20)
    mc = gradient_variance(vae, x[:50], "mc", repeats=20)
    assert stl["encoder"]["total_variance"] < 1e-16
    assert mc["encoder"]["total_variance"] > 1e-6
    assert set(stl) == {"encoder", "decoder"} and set(stl["encoder"]) == {"total_variance", "mean_sq_norm", "snr"}


def test_samples_leave_parameters_and_global_rng_alone(ppca_setup):
    ppca, x, vae, exact = ppca_setup
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    torch.manual_seed(5)
    state = torch.get_rng_state()
    samples = gradient_samples(vae, x[:20], "mc", repeats=7)
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in vae.state_dict().items())
    n_enc = sum(p.numel() for p in vae.encoder.parameters())
    assert samples["encoder"].shape == (7, n_enc)
    assert torch.equal(gradient_samples(vae, x[:20], "mc", repeats=7)["decoder"], samples["decoder"])


def test_summary_statistics_and_bootstrap_ratio(float64):
    g = torch.Generator().manual_seed(0)
    a = 1.0 + 2.0 * torch.randn(4000, 3, generator=g)  # var 4 per coordinate, mean 1
    b = torch.randn(4000, 3, generator=g)               # var 1
    s = summarize(a)
    assert abs(s["total_variance"] - 12) < 0.6 and abs(s["mean_sq_norm"] - 15) < 0.8
    assert abs(s["snr"] - 3 ** 0.5 / 12 ** 0.5) < 0.05
    ratio, low, high = variance_ratio(a, b, boot=200)
    assert low < 4 < high and low < ratio < high


def test_active_units_follow_the_covariance_criterion(ppca_setup):
    ppca, x, vae, exact = ppca_setup
    count, activity = active_units(vae, x)
    assert count == 3 and (activity > 0.01).all()
    with torch.no_grad():
        vae.encoder.weight[1].zero_()  # the posterior mean of unit 1 no longer depends on x
    count, activity = active_units(vae, x)
    assert count == 2 and activity[1] < 1e-20


def test_grouping_covers_every_parameter():
    vae = VAE(6, 2, hidden=(4,), prior="mog", likelihood="normal-pixel")
    samples = gradient_samples(vae, torch.rand(3, 6), "mc", repeats=2)
    assert sum(s.shape[1] for s in samples.values()) == sum(p.numel() for p in vae.parameters())


def test_bootstrap_total_variance_matches_direct_resampling(float64):
    from pyrovae.diagnostics import _bootstrap_total_variance

    g = torch.Generator().manual_seed(1)
    x = torch.randn(9, 5, generator=g)
    idx = torch.randint(9, (9,), generator=g)
    counts = torch.bincount(idx, minlength=9).double()[None]
    assert torch.allclose(_bootstrap_total_variance(x, counts), x[idx].var(0).sum()[None])

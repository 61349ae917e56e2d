"""Importance-sampling diagnostics: Kish's ESS and PSIS k-hat against hand-computed values,
an independent plain transcription of the reference k-hat procedure, and known tail shapes."""

import json
import math

import numpy as np
import pytest
import torch

from pyrovae.importance import (
    ImportanceDiagnostics,
    effective_sample_size,
    log_mean_exp,
    pareto_khat,
    standard_error,
    summarize,
    tail_length,
)

F64 = torch.float64


def reference_khat(log_w):
    """PSIS k-hat of one vector of log weights, written out plainly from Vehtari et al. (2024)
    and ArviZ's ``_psislw``/``_gpdfit`` (Zhang & Stephens 2009), in float64 Python loops."""
    lw = np.asarray(log_w, dtype=np.float64)
    n_samples = len(lw)
    tail = int(math.ceil(min(0.2 * n_samples, 3 * math.sqrt(n_samples))))
    lw = np.sort(lw - lw.max())
    cutoff = lw[n_samples - tail - 1]
    x = [math.exp(v) - math.exp(cutoff) for v in lw[n_samples - tail:]]  # ascending exceedances
    n = len(x)
    m = 30 + int(math.sqrt(n))
    quartile = x[int(n / 4 + 0.5) - 1]
    bs, profile = [], []
    for j in range(1, m + 1):
        b = 1 / x[n - 1] + (1 - math.sqrt(m / (j - 0.5))) / (3 * quartile)
        k = sum(math.log1p(-b * xi) for xi in x) / n
        bs.append(b)
        profile.append(n * (math.log(-b / k) - k - 1))
    weights = [1 / sum(math.exp(l_i - l_j) for l_i in profile) for l_j in profile]
    kept = [i for i in range(m) if weights[i] >= 10 * np.finfo(float).eps]  # as ArviZ
    b_post = sum(bs[i] * weights[i] for i in kept) / sum(weights[i] for i in kept)
    k = sum(math.log1p(-b_post * xi) for xi in x) / n
    return (n * k + 10 * 0.5) / (n + 10)


def gpd_log_weights(shape, xi, seed):
    """Log of exact generalized Pareto(xi, scale 1) draws, by inverting the CDF at uniforms."""
    u = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return torch.log(((1 - u) ** (-xi) - 1) / xi)


def normal_log_weights(shape, scale, seed):
    return scale * torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


# --- effective sample size ----------------------------------------------------------------------


def test_ess_hand_computed_and_batched():
    w = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64)
    log_w = torch.stack([w.log(), torch.zeros(4, dtype=F64)], dim=1)  # two points
    ess = effective_sample_size(log_w)
    assert ess.shape == (2,) and ess.dtype == F64
    assert ess.tolist() == pytest.approx([100 / 30, 4.0], rel=1e-14)  # (1+2+3+4)^2 / (1+4+9+16)


def test_ess_equal_and_one_dominant_weight():
    K = 7
    one_hot = torch.full((K,), -math.inf, dtype=F64)
    one_hot[3] = 0.0
    nearly = torch.full((K,), -1000.0, dtype=F64)
    nearly[0] = 5.0
    log_w = torch.stack([torch.full((K,), -3.2, dtype=F64), one_hot, nearly], dim=1)
    assert effective_sample_size(log_w).tolist() == pytest.approx([K, 1.0, 1.0], rel=1e-14)


def test_ess_is_stable_far_from_zero_and_accepts_a_vector():
    w = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64)
    for shift in (-5000.0, 0.0, 5000.0):  # exp would overflow/underflow without normalizing
        ess = effective_sample_size(w.log() + shift)
        assert ess.shape == () and float(ess) == pytest.approx(100 / 30, rel=1e-12)


def test_log_mean_exp_is_the_log_of_the_mean_weight():
    w = torch.tensor([[1.0, 0.5], [2.0, 0.5], [3.0, 0.5], [4.0, 0.5]], dtype=F64)
    assert log_mean_exp(w.log() + 800.0).tolist() == pytest.approx([math.log(2.5) + 800, math.log(0.5) + 800])


# --- Pareto k-hat -----------------------------------------------------------------------------------


def test_tail_length():
    assert [tail_length(k) for k in (20, 24, 100, 5000, 20000)] == [4, 5, 20, 213, 425]


def _fixed_vectors(K):
    """Deterministic log weights: normal quantiles (scales 0.3, 1, 3), shuffled by a fixed
    permutation, and a GPD(0.7)-quantile column; no random generator involved."""
    p = (torch.arange(1, K + 1, dtype=F64) - 0.5) / K
    z = math.sqrt(2) * torch.erfinv(2 * p - 1)
    perm = (torch.arange(K) * 37) % K  # 37 is coprime to 100, 1000 and 5000
    gpd = torch.log(((1 - p) ** -0.7 - 1) / 0.7)
    return torch.stack([0.3 * z, z[perm], 3 * z, gpd + 0.01 * torch.sin(torch.arange(K, dtype=F64))], dim=1)


@pytest.mark.parametrize("K", [100, 1000, 5000])
def test_khat_matches_plain_reference_on_fixed_vectors(K):
    log_w = _fixed_vectors(K)
    khat = pareto_khat(log_w)
    expected = [reference_khat(log_w[:, i].numpy()) for i in range(log_w.shape[1])]
    assert khat.shape == (4,) and khat.dtype == F64
    assert np.abs(khat.numpy() - np.array(expected)).max() < 1e-10
    assert khat[0] < khat[1] < khat[2]  # wider log-normal weights, heavier tail
    assert abs(float(khat[3]) - 0.7) < 0.12  # GPD(0.7) quantiles (shrunk a little towards 0.5)


def test_khat_matches_plain_reference_on_seeded_draws():
    log_w = torch.cat([normal_log_weights((1000, 3), 1.5, seed=11), gpd_log_weights((1000, 2), 0.9, seed=12)], 1)
    expected = [reference_khat(log_w[:, i].numpy()) for i in range(log_w.shape[1])]
    assert np.abs(pareto_khat(log_w).numpy() - np.array(expected)).max() < 1e-10


def test_khat_of_exact_generalized_pareto_weights():
    """Weights that are GPD(0.5) draws: every tail above a threshold is GPD(0.5) again."""
    khat = pareto_khat(gpd_log_weights((20000, 16), 0.5, seed=0))
    assert (khat - 0.5).abs().max() < 0.25  # sd of one fit is about (1 + xi) / sqrt(425) = 0.07
    assert abs(float(khat.mean()) - 0.5) < 0.05  # 16 fits: sd about 0.02
    assert abs(float(khat[0]) - 0.5) < 0.1


def test_khat_light_and_heavy_tails():
    light = pareto_khat(normal_log_weights((5000, 8), 0.1, seed=1))
    heavy = pareto_khat(normal_log_weights((5000, 8), 3.0, seed=2))
    assert light.max() < 0.5
    assert heavy.median() > 0.7 and heavy.min() > 0.5


def test_khat_agrees_with_scipy_maximum_likelihood():
    stats = pytest.importorskip("scipy.stats")
    log_w = gpd_log_weights(20000, 0.5, seed=3)
    top = torch.sort(log_w - log_w.max()).values[-(tail_length(20000) + 1):]
    exceedances = (top[1:].exp() - top[0].exp()).numpy()
    shape, _, _ = stats.genpareto.fit(exceedances, floc=0)  # maximum likelihood, no prior
    assert abs(shape - float(pareto_khat(log_w))) < 0.1


def test_khat_invariances_and_streamed_top_weights():
    log_w = normal_log_weights((2000, 5), 2.0, seed=4)
    khat = pareto_khat(log_w)
    perm = torch.randperm(2000, generator=torch.Generator().manual_seed(5))
    assert torch.equal(pareto_khat(log_w[perm]), khat)
    assert torch.allclose(pareto_khat(log_w - 700.0), khat, atol=1e-9)  # only ratios matter
    assert torch.allclose(pareto_khat(log_w.float()), khat, atol=1e-3)  # float32 in, float64 out
    top = torch.topk(log_w, tail_length(2000) + 1, dim=0).values  # e.g. kept over chunks of K
    assert torch.equal(pareto_khat(top, num_samples=2000), khat)
    with pytest.raises(ValueError, match="largest"):
        pareto_khat(top[:-1], num_samples=2000)
    assert pareto_khat(log_w[:, 0]).shape == ()


def test_khat_undefined_and_overflowing_cases():
    assert torch.isnan(pareto_khat(torch.randn(20, 3, dtype=F64))).all()  # M = 4 < 5
    assert not torch.isnan(pareto_khat(torch.randn(25, 3, dtype=F64))).any()  # M = 5
    assert torch.isnan(pareto_khat(torch.zeros(100, 2, dtype=F64))).all()  # flat tail
    assert torch.isnan(pareto_khat(torch.full((100,), -math.inf, dtype=F64)))
    assert torch.isposinf(pareto_khat(1000 * torch.randn(100, dtype=F64)))  # tail spans > e^745


# --- standard error and summary --------------------------------------------------------------------


def test_standard_error():
    assert standard_error(torch.tensor([1.0, 2.0, 3.0, 4.0])) == pytest.approx(math.sqrt(5 / 3) / 2, rel=1e-14)
    assert standard_error([2.0, 2.0]) == 0.0
    assert math.isnan(standard_error([1.0])) and math.isnan(standard_error([]))


def test_summarize_on_fixed_values():
    nan = math.nan
    d = summarize(torch.tensor([-1.0, -2.0, -3.0, -4.0], dtype=F64), torch.tensor([0.1, 0.8, nan, 0.75], dtype=F64),
                  torch.tensor([1.0, 2.0, 3.0, 10.0]), num_samples=50)
    assert (d.num_samples, d.num_points, d.num_khat_undefined) == (50, 4, 1)
    assert d.log_px == -2.5 and d.log_px_se == pytest.approx(math.sqrt(5 / 3) / 2)
    assert (d.median_ess, d.frac_khat_high, d.max_khat) == (2.5, 0.5, 0.8)
    assert d.warning() == ("importance sampling is unreliable: k-hat > 0.7 for 50% of the points "
                           "(median ESS 2.5 of 50); the log p(x) estimate may be far below the truth")


def test_warning_fires_for_heavy_tails_only():
    heavy = ImportanceDiagnostics.from_log_weights(normal_log_weights((5000, 20), 3.0, seed=6))
    light = ImportanceDiagnostics.from_log_weights(normal_log_weights((5000, 20), 0.1, seed=7))
    message = heavy.warning()
    assert heavy.median_ess > 10  # fires on k-hat alone
    assert message is not None and "\n" not in message and message.startswith("importance sampling is unreliable")
    assert "k-hat > 0.7 for" in message and "of 5000" in message
    assert not heavy.is_reliable()
    assert light.warning() is None and light.is_reliable()
    assert light.median_ess > 4900 and light.frac_khat_high == 0.0 and light.max_khat < 0.5


def test_warning_on_low_ess_when_khat_is_undefined():
    d = ImportanceDiagnostics.from_log_weights(torch.randn(5, 30, dtype=F64))  # K = 5: no tail
    assert math.isnan(d.frac_khat_high) and d.num_khat_undefined == 30
    assert d.warning() is not None and "k-hat undefined" in d.warning() and "of 5)" in d.warning()


def test_to_dict_is_strict_json():
    d = ImportanceDiagnostics.from_log_weights(normal_log_weights((5000, 10), 3.0, seed=8))
    out = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert out["warning"] == d.warning() and out["num_samples"] == 5000 and out["max_khat"] == d.max_khat
    undefined = ImportanceDiagnostics.from_log_weights(torch.randn(5, 1, dtype=F64)).to_dict()
    assert undefined["max_khat"] is None and undefined["log_px_se"] is None
    json.dumps(undefined, allow_nan=False)

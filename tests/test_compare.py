"""`pyrovae compare` end to end (as a subprocess) and the report's statistics."""

import json
import math
import re
import subprocess
import sys

import matplotlib.image as mpimg
import pytest
import torch

from pyrovae.diagnostics import variance_ratio
from pyrovae.report import mean_ci, verdicts, write_report


def test_compare_writes_every_report_file(tmp_path):
    out = tmp_path / "cmp"
    res = subprocess.run([sys.executable, "-m", "pyrovae", "compare", "--estimators", "mc,analytic",
                          "--latent-dims", "2,5", "--epochs", "1", "--seeds", "2", "--ll-samples", "20",
                          "--grad-repeats", "6", "--curve-points", "3", "--grad-points", "1", "--dataset", "mnist-5k", "--device", "cpu", "--out", str(out),
                          "--no-progress"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    for name in ("report.json", "report.md", "figure2.png", "grad_variance.png", "time_per_step.png"):
        assert (out / name).is_file(), name
    for png in out.glob("*.png"):
        image = mpimg.imread(png)
        assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0.01, png.name  # decodes, not blank
    report = json.loads((out / "report.json").read_text())
    assert len(report["runs"]) == 2 * 2 * 2
    assert set(report["summary"]) == {"2/mc", "2/analytic", "5/mc", "5/analytic"}
    assert {c["verdict"] for c in report["comparisons"]} <= {"no difference", "mc better", "analytic better"}
    run = report["runs"][0]
    assert set(run["gradients"]) == {"0", str(run["samples_seen"])}  # probes: initialization and the end
    assert [point["samples_seen"] for point in run["curve"]][-1] == run["samples_seen"] == 4000
    ratio = run["gradients"]["0"]["ratios_to_mc"]["analytic"]["decoder"]
    assert ratio["ratio"] == pytest.approx(1.0)  # same noise, and the KL term does not touch the decoder
    md = (out / "report.md").read_text()
    for link in re.findall(r"\]\(([^)]+)\)", md):
        assert (out / link).is_file(), link  # the report links only files that exist
    assert "| 2 | mc |" in md


def test_same_seed_same_initial_weights_across_estimators(tmp_path):
    """Each cell starts from identical weights: the epoch-0 gradients of mc agree across runs."""
    from pyrovae import load_dataset
    from pyrovae.compare import compare

    data = load_dataset("mnist-5k")
    data.train, data.test = data.train[:200], data.test[:50]
    result = compare(data, ["mc", "analytic"], [2], seeds=1, epochs=1, ll_samples=5, grad_repeats=3,
                     device="cpu")
    a, b = (r["gradients"][0]["stats"]["mc"]["encoder"] for r in result["runs"])
    assert a == b
    # One seed and three gradient repeats are too few for a spread or a bootstrap interval: the report
    # says n/a where it has no number, never NaN, and gives no verdict.
    report = write_report(result, str(tmp_path / "edges"))
    text = (tmp_path / "edges" / "report.json").read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"report.json holds {name}"))
    assert report["comparisons"][0]["verdict"] == "n/a" and report["comparisons"][0]["spread"] is None
    ratio = report["runs"][0]["gradients"][0]["ratios_to_mc"]["analytic"]["encoder"]
    assert ratio["ratio"] > 0 and ratio["low"] is None and ratio["high"] is None
    md = (tmp_path / "edges" / "report.md").read_text()
    assert "nan" not in md.lower() and "| 2 | 200 | encoder | analytic / mc |" in md and "| n/a |" in md


def test_mean_ci_uses_student_t():
    stat = mean_ci([1.0, 2.0, 3.0])
    assert stat["mean"] == 2.0 and stat["sd"] == 1.0
    assert stat["ci95"] == pytest.approx(4.303 / math.sqrt(3))
    assert mean_ci([5.0]) == {"mean": 5.0, "sd": None, "ci95": None, "n": 1}  # one seed: no spread


def test_differences_within_seed_spread_are_no_difference():
    summary = {"3/mc": {"test_elbo": {"mean": -100.0, "sd": 1.0}},
               "3/stl": {"test_elbo": {"mean": -99.5, "sd": 0.8}},
               "3/iwae": {"test_elbo": {"mean": -97.0, "sd": 0.5}}}
    got = {c["estimator"]: c["verdict"] for c in verdicts(summary, ["mc", "stl", "iwae"], [3])}
    assert got == {"stl": "no difference", "iwae": "iwae better"}


def test_no_verdict_without_a_seed_spread():
    """One seed, or seeds that agree exactly, cannot tell a 0.01-nat difference from noise."""
    one_seed = {"3/mc": {"test_elbo": mean_ci([-100.0])}, "3/analytic": {"test_elbo": mean_ci([-99.99])}}
    agree = {"3/mc": {"test_elbo": mean_ci([-100.0, -100.0])}, "3/analytic": {"test_elbo": mean_ci([-99.99] * 2)}}
    for summary in (one_seed, agree):
        (c,) = verdicts(summary, ["mc", "analytic"], [3])
        assert c["verdict"] == "n/a" and c["diff"] == pytest.approx(0.01)


@pytest.mark.parametrize("repeats", [1, 2, 3, 4, 5, 8])
def test_bootstrap_interval_is_defined_or_none_never_nan(repeats):
    """A resample that repeats one gradient has variance 0; with few repeats those resamples are common
    (half of them for 2 repeats) and the interval is None instead of [nan, nan]."""
    g = torch.Generator().manual_seed(repeats)
    a, b = 3.0 * torch.randn(repeats, 40, generator=g), torch.randn(repeats, 40, generator=g)
    ratio, low, high = variance_ratio(a, b, boot=400)
    values = [v for v in (ratio, low, high) if v is not None]
    assert all(math.isfinite(v) for v in values)
    assert (ratio is None) == (repeats < 2) and (low is None) == (high is None) == (repeats < 5)
    if low is not None:
        assert low < ratio < high
    assert variance_ratio(torch.ones(6, 3), torch.ones(6, 3)) == (None, None, None)  # no variance at all

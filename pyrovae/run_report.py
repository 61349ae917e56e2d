"""``report.md`` of one run folder: its configuration, final metrics and every figure, in one place.

The report is rebuilt from the folder's files (``config.json``, ``metrics.json``,
``summary.json`` and the ``<kind>.png`` figures of :mod:`pyrovae.plots`), so it
links only files that exist. The estimator comparison of ``pyrovae compare``
writes its own report (:mod:`pyrovae.report`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from .checkpoint import atomic_write
from .plots import PLOTS
from .runs import RunFolder
from .tables import markdown_table

REPORT = "report.md"
#: Optional TensorBoard event files of a run (``pyrovae train --tensorboard``).
TENSORBOARD_DIR = "tensorboard"


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.3f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) or "none"
    return "–" if v is None else str(v)


def _metric_rows(last: Dict[str, Any], summary: Dict[str, Any]) -> List[List[Any]]:
    """Final numbers, nats per test point: the last epoch's record, then the summary's."""
    names = {"epoch": "epochs", "samples_seen": "training samples seen", "train_elbo": "train ELBO (last epoch)",
             "train_iwae": "train IWAE bound (last epoch)", "test_elbo": "test ELBO (last epoch)",
             "test_iwae": "test IWAE bound (last epoch)", "test_recon": "test E_q log p(x|z)",
             "test_kl": "test KL(q || p)"}
    rows = [[label, last[key]] for key, label in names.items() if key in last]
    rows += [[f"test ELBO ({name})", v] for name, v in summary.get("test_elbo", {}).items()]
    for key, label in (("log_likelihood", "test log p(x), IS with K = {}"),
                       ("log_likelihood_ais", "test log p(x), AIS with {} chains")):
        if key in summary:
            ll = summary[key]
            rows.append([label.format(ll["num_samples"]), ll["nats"]])
            rows += _diagnostic_rows(ll.get("diagnostics"))
    rows += _gap_rows(summary.get("inference_gaps"))
    if "class_mean_accuracy" in summary:
        rows.append(["nearest class mean accuracy (test)", summary["class_mean_accuracy"]])
    for key, label in (("train_seconds", "training time (s)"), ("device", "device"), ("torch", "torch"),
                       ("pyro", "pyro")):
        if key in summary:
            rows.append([label, summary[key]])
    return rows


def _gap_rows(gaps: Optional[Dict[str, Any]]) -> List[List[Any]]:
    """The inference gaps (Cremer et al. 2018) of ``pyrovae evaluate --gaps``, if measured."""
    if not gaps:
        return []
    return [[f"approximation gap ({gaps['num_points']} test points)", gaps["approximation_gap"]],
            [f"amortization gap ({gaps['num_points']} test points)", gaps["amortization_gap"]]]


def _diagnostic_rows(diag: Optional[Dict[str, Any]]) -> List[List[Any]]:
    """How far to trust log p(x): its standard error, median ESS, Pareto k-hat and any warning."""
    if not diag:
        return []
    rows = [["  standard error over test points", diag["log_px_se"]],
            ["  median effective sample size", diag["median_ess"]],
            ["  points with Pareto k-hat > 0.7", diag["frac_khat_high"]]]
    return rows + ([["  warning", diag["warning"]]] if diag.get("warning") else [])


def markdown(name: str, config: Dict[str, Any], metrics: List[Dict[str, Any]], summary: Dict[str, Any],
             files: List[str]) -> str:
    """The report text; ``files`` are the names present in the run folder."""
    lines = [f"# Run `{name}`", "",
             "ELBOs and log-likelihoods in nats per test point (higher is better), always the true bound "
             "(KL weight 1) whatever `beta` and warm-up the run trained with.", "",
             "## Configuration", "",
             markdown_table(["setting", "value"], list(config.items()), code=(), fmt=_value), "",
             "## Final metrics", ""]
    rows = _metric_rows(metrics[-1] if metrics else {}, summary)
    lines.append(markdown_table(["quantity", "value"], rows, code=(), fmt=_value) if rows
                 else "No epoch has finished yet.")
    figures = [(n, spec.description) for n, spec in PLOTS.items() if f"{n}.png" in files]
    if not figures and summary.get("figures"):
        lines += ["", "## Figures", "", f"{summary['figures'][0].upper()}{summary['figures'][1:]}."]
    if figures:
        lines += ["", "## Figures", ""]
        for kind, description in figures:
            lines += [f"### {kind}", "", f"{description[0].upper()}{description[1:]}.", "", f"![{kind}]({kind}.png)", ""]
    lines += ["## Files", ""] if figures else ["", "## Files", ""]
    lines += [f"- [{f}]({f})" for f in ("config.json", "metrics.json", "summary.json", "checkpoint.pt") if f in files]
    if TENSORBOARD_DIR in files:
        lines.append(f"- TensorBoard logs: `tensorboard --logdir {TENSORBOARD_DIR}` from this folder")
    return "\n".join(lines).rstrip() + "\n"


def write_run_report(run: str | os.PathLike) -> Path:
    """Write ``report.md`` into the run folder from what the folder holds; returns its path."""
    folder = RunFolder(run)
    files = sorted(os.listdir(folder.path)) if folder.path.is_dir() else []
    text = markdown(folder.path.name, folder.read_config(), folder.read_metrics(), folder.read_summary(), files)
    path = folder.path / REPORT
    atomic_write(path, lambda f: f.write(text), mode="w")
    return path

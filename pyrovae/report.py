"""Turn ``compare()`` records into ``report.json``, ``report.md`` and PNG figures.

Tables give the mean over seeds with a 95% t-interval. A difference between two estimators
smaller than the seed-to-seed spread (the larger of their standard deviations) is reported as
no difference. What the data cannot define is shown as "n/a", never as NaN: the interval and
spread of one seed, a verdict without a seed spread (one seed, or seeds that agree exactly), a
bootstrap interval from too few gradient repeats (see :func:`pyrovae.diagnostics.variance_ratio`).
Figure 2 follows the paper: test (solid) and train (dashed) ELBO against
training samples seen, one panel per latent size, one curve per estimator, with a band spanning
the seeds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from matplotlib.figure import Figure  # drawn without pyplot: no backend chosen, no global figure state

from .checkpoint import atomic_write, write_json
from .tables import markdown_table

# Two-sided 97.5% Student-t quantiles by degrees of freedom (1.96 beyond the table).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042}


#: What the reports show where a number is not defined.
NOT_AVAILABLE = "n/a"


def mean_ci(values: Sequence[float]) -> Dict[str, Optional[float]]:
    """Mean, standard deviation and the half-width of a 95% t-interval; ``sd`` and ``ci95`` are None for one value."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "sd": None, "ci95": None, "n": n}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = _T975[max(k for k in _T975 if k <= n - 1)] if n - 1 <= 30 else 1.96
    return {"mean": mean, "sd": sd, "ci95": t * sd / math.sqrt(n), "n": n}


def _cells(result: Dict[str, Any]) -> Dict[tuple, List[Dict[str, Any]]]:
    cells: Dict[tuple, List[Dict[str, Any]]] = {}
    for run in result["runs"]:
        cells.setdefault((run["z_dim"], run["estimator"]), []).append(run)
    return cells


def summarize(result: Dict[str, Any]) -> Dict[str, Any]:
    """Per (latent size, estimator): final ELBO, log-likelihood, active units, time per step."""
    table = {}
    for (z, est), runs in _cells(result).items():
        table[f"{z}/{est}"] = {
            "z_dim": z, "estimator": est,
            "test_elbo": mean_ci([r["final_elbo"]["mc"] for r in runs]),
            "log_likelihood": mean_ci([r["log_likelihood"] for r in runs]),
            "active_units": mean_ci([r["active_units"] for r in runs]),
            "ms_per_step": mean_ci([1000 * r["seconds_per_step"] for r in runs]),
        }
    return table


def _verdict(diff: float, spread: Optional[float], est: str, ref: str) -> str:
    """``est`` against ``ref``; "n/a" without a spread to judge by (a spread of 0 would call any difference)."""
    if not spread:
        return NOT_AVAILABLE
    return "no difference" if abs(diff) <= spread else (f"{est} better" if diff > 0 else f"{ref} better")


def verdicts(summary: Dict[str, Any], estimators: Sequence[str], latent_dims: Sequence[int]) -> List[Dict]:
    """Each estimator against the first, per latent size, on final test ELBO."""
    ref, out = estimators[0], []
    for z in latent_dims:
        a = summary[f"{z}/{ref}"]["test_elbo"]
        for est in estimators[1:]:
            b = summary[f"{z}/{est}"]["test_elbo"]
            diff = b["mean"] - a["mean"]
            spread = None if a["sd"] is None or b["sd"] is None else max(a["sd"], b["sd"])
            out.append({"z_dim": z, "estimator": est, "reference": ref, "diff": diff, "spread": spread,
                        "verdict": _verdict(diff, spread, est, ref)})
    return out


def _number(value: Optional[float], spec: str) -> str:
    return NOT_AVAILABLE if value is None else format(value, spec)


def _fmt(stat: Dict[str, Any], digits: int = 2) -> str:
    ci = "" if stat["ci95"] is None else f" ± {stat['ci95']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}{ci}"


def _interval(r: Dict[str, Optional[float]]) -> str:
    return NOT_AVAILABLE if r["low"] is None else f"[{r['low']:.3g}, {r['high']:.3g}]"


def _variance_rows(result: Dict[str, Any]) -> List[List[Any]]:
    ref = result["estimators"][0]
    rows = []
    for run in result["runs"]:
        if run["estimator"] != ref or run["seed"] != 0:
            continue
        for seen, probe in sorted(run["gradients"].items(), key=lambda kv: int(kv[0])):
            for est, groups in probe[f"ratios_to_{ref}"].items():
                rows += [[run["z_dim"], seen, net, f"{est} / {ref}", _number(r["ratio"], ".3g"), _interval(r)]
                         for net, r in groups.items()]
    return rows


def _results_table(result: Dict[str, Any], summary: Dict[str, Any]) -> str:
    header = ["Nz", "estimator", "test ELBO (mc)", f"log p(x), K={result['ll_samples']}", "active units",
              "ms / step"]
    return markdown_table(header, [[c["z_dim"], c["estimator"], _fmt(c["test_elbo"]), _fmt(c["log_likelihood"]),
                                    _fmt(c["active_units"], 1), _fmt(c["ms_per_step"], 2)]
                                   for c in summary.values()], code=())


def _verdicts_table(comparisons: List[Dict]) -> str:
    rows = [[c["z_dim"], f"{c['estimator']} − {c['reference']}", f"{c['diff']:+.2f}", _number(c["spread"], ".2f"),
             c["verdict"]] for c in comparisons]
    return markdown_table(["Nz", "comparison", "difference", "seed spread", "verdict"], rows, code=())


def markdown(result: Dict[str, Any], summary: Dict[str, Any], comparisons: List[Dict]) -> str:
    """The report as Markdown: set-up, results table, verdicts, gradient variance ratios, figures."""
    ref = result["estimators"][0]
    lines = [
        "# Estimator comparison", "",
        f"Dataset `{result['dataset']}` (binarization {result['binarize']}), setup `{result['setup']}` "
        f"({result['setup_detail']}), lr {result['lr']}, M = {result['batch_size']}, "
        f"L/K = {result['particles']}, {budget_text(result)}, {result['seeds']} seeds per cell, "
        f"device {result['runs'][0]['device']}. Values: mean ± 95% t-interval over seeds, nats per test point.",
        "", _results_table(result, summary),
    ]
    if comparisons:
        lines += ["", "## Differences in final test ELBO", "",
                  "A difference no larger than the seed-to-seed standard deviation is reported as no difference; "
                  "without a spread (one seed, or seeds that agree exactly) there is no verdict (n/a).",
                  "", _verdicts_table(comparisons)]
    rows = _variance_rows(result)
    if rows:
        lines += ["", "## Gradient variance ratios at fixed parameters", "",
                  f"Total gradient variance of each estimator over that of `{ref}`, {result['grad_repeats']} "
                  f"independent estimates on one fixed minibatch at the parameters of the seed-0 `{ref}` run "
                  "after each number of training samples; 95% bootstrap interval (n/a with fewer than five "
                  "estimates).", "",
                  markdown_table(["Nz", "samples seen", "network", "ratio", "value", "95% CI"], rows, code=())]
    lines += ["", "## Figures", "", "![Figure 2](figure2.png)", "", "![gradient variance](grad_variance.png)",
              "", "![time per step](time_per_step.png)", ""]
    return "\n".join(lines)


def budget_text(result: Dict[str, Any]) -> str:
    """The training budget of every run, as the report states it."""
    samples = result.get("samples")
    return f"{result['epochs']} epochs" if samples is None else f"{samples:.3g} training samples per run"


def _records(run: Dict[str, Any]) -> List[Dict[str, Any]]:
    """A run's learning curve: the log-spaced points when recorded, else one record per epoch."""
    return run.get("curve") or run["metrics"]


def _curves(runs, key):
    xs = [r["samples_seen"] for r in _records(runs[0])]
    ys = [[_records(r)[i][key] for r in runs] for i in range(len(xs))]
    return xs, [sum(v) / len(v) for v in ys], [min(v) for v in ys], [max(v) for v in ys]


def figure2(result: Dict[str, Any], path: Path) -> None:
    """Train (dashed; dotted for the IWAE bound of iwae/dreg) and test (solid) ELBO against samples
    seen; one panel per latent size."""
    dims, cells = result["latent_dims"], _cells(result)
    fig = Figure(figsize=(max(6.0, 4 * len(dims)), 3.6))
    axes = fig.subplots(1, len(dims), squeeze=False)
    for ax, z in zip(axes[0], dims):
        late = []  # the bands over the second half of training (in log samples)
        for i, est in enumerate(result["estimators"]):
            color = f"C{i}"
            # iwae/dreg train the IWAE bound: their train curve says so (train_iwae, not train_elbo).
            for key, style, what in (("test_elbo", "-o", "test"), ("train_elbo", "--o", "train"),
                                     ("train_iwae", ":o", "train IWAE bound")):
                if key not in _records(cells[z, est][0])[0]:
                    continue
                xs, mean, low, high = _curves(cells[z, est], key)
                ax.plot(xs, mean, style, color=color, markersize=3, label=f"{est} ({what})")
                ax.fill_between(xs, low, high, color=color, alpha=0.15)
                late += [v for x, lo, hi in zip(xs, low, high) if x * x >= xs[0] * xs[-1] for v in (lo, hi)]
        if len(late) > 2:  # as the paper's Figure 2: the y axis shows where the bounds converge
            margin = 0.1 * (max(late) - min(late)) or 1.0
            ax.set_ylim(min(late) - margin, max(late) + margin)
        ax.set_title(f"Nz = {z}")
        ax.set_xlabel("training samples seen")
        ax.set_xscale("log")
    axes[0][0].set_ylabel("ELBO (nats / point)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle("Test (solid) and train (dashed) bound per estimator; bands span the seeds; "
                 "y axis: the second half of training (log samples)", fontsize=10)
    _save(fig, path)


def grad_variance_figure(result: Dict[str, Any], path: Path) -> None:
    """Total gradient variance per network over training, per estimator (seed-0 runs of each)."""
    dims = result["latent_dims"]
    fig = Figure(figsize=(max(6.0, 4 * len(dims)), 6))
    axes = fig.subplots(2, len(dims), squeeze=False)
    for col, z in enumerate(dims):
        for i, est in enumerate(result["estimators"]):
            run = next(r for r in result["runs"] if r["z_dim"] == z and r["estimator"] == est and r["seed"] == 0)
            seen = sorted(run["gradients"], key=int)
            for row, net in enumerate(("encoder", "decoder")):
                ys = [run["gradients"][s]["stats"][est][net]["total_variance"] for s in seen]
                axes[row][col].plot([int(s) for s in seen], ys, "o-", color=f"C{i}", label=est)
                axes[row][col].set_yscale("log")
                # symlog: the probe at the initial weights (0 samples) sits left of the log-spaced ones
                axes[row][col].set_xscale("symlog", linthresh=max(1, result["batch_size"]))
                axes[row][col].set_title(f"{net}, Nz = {z}")
        axes[1][col].set_xlabel("training samples seen")
    axes[0][0].set_ylabel("tr Var[gradient]")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle("Total gradient variance at fixed parameters (seed-0 runs)", fontsize=10)
    _save(fig, path)


def time_figure(summary: Dict[str, Any], result: Dict[str, Any], path: Path) -> None:
    """Wall time per training step, per estimator and latent size."""
    dims, ests = result["latent_dims"], result["estimators"]
    fig = Figure(figsize=(max(5.0, 1.2 + 1.1 * len(dims) * len(ests) / 2), 3.2))  # readable with one cell too
    ax = fig.subplots()
    width = 0.8 / len(ests)
    for i, est in enumerate(ests):
        ms = [summary[f"{z}/{est}"]["ms_per_step"]["mean"] for z in dims]
        ax.bar([k + i * width for k in range(len(dims))], ms, width, label=est, color=f"C{i}")
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(dims))], [f"Nz={z}" for z in dims])
    ax.set_ylabel("ms per step")
    ax.set_title("Wall time per training step", fontsize=10)
    ax.legend(fontsize=7)
    _save(fig, path)


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))


def write_report(result: Dict[str, Any], out: str) -> Dict[str, Any]:
    """Write ``report.json``, ``report.md``, ``figure2.png``, ``grad_variance.png`` and ``time_per_step.png``."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    summary = summarize(result)
    comparisons = verdicts(summary, result["estimators"], result["latent_dims"])
    figure2(result, folder / "figure2.png")
    grad_variance_figure(result, folder / "grad_variance.png")
    time_figure(summary, result, folder / "time_per_step.png")
    report = {**result, "summary": summary, "comparisons": comparisons}
    write_json(folder / "report.json", json.loads(json.dumps(report, default=float)))
    atomic_write(folder / "report.md", lambda f: f.write(markdown(result, summary, comparisons)), mode="w")
    return report

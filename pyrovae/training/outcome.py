"""What a finished ``fit`` leaves: the summary, the final test ELBOs, and the run folder's report."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pyro
import torch

from ..estimators import MissingKLError
from ..evaluate import evaluate_elbo
from ..runs import RunFolder
from ..vae import VAE


def _changes(old: Dict[str, Any], new: Dict[str, Any]) -> Dict[str, List[Any]]:
    """``{option: [before, after]}`` for every option a resume changed (epochs, lr, checkpointing, ...)."""
    return {k: [old.get(k), v] for k, v in new.items() if old.get(k) != v}


def final_elbos(model, test: torch.Tensor, seed: int, labels=None, ranks=None) -> Dict[str, float]:
    """The test ELBO under ``mc`` and, where every KL has a closed form, ``analytic`` (at KL weight 1)."""
    out = {"mc": evaluate_elbo(model, test, "mc", seed=seed, labels=labels, ranks=ranks)}
    try:
        out["analytic"] = evaluate_elbo(model, test, "analytic", seed=seed, labels=labels, ranks=ranks)
    except MissingKLError:
        pass
    return out


def summary_of(loop, estimator: str, est, device: torch.device, data, ranks) -> Dict[str, Any]:
    """``summary.json``'s entries for a finished run: counts, times, versions and the final test ELBOs."""
    counters = loop.counters
    summary: Dict[str, Any] = {
        "epochs": counters.epoch, "samples_seen": counters.samples_seen, "estimator": estimator,
        "kl_routes": getattr(est, "kl_routes", {}), "device": str(device),
        "torch": torch.__version__, "pyro": pyro.__version__, "python": platform.python_version(),
        "train_seconds": counters.seconds + counters.epoch_seconds, "wall_time": counters.wall_time,
        "world_size": 1 if ranks is None else ranks.world_size,
        "step": loop.step.runs_as,  # what --step auto chose, or eager where a model could not be recorded
    }
    if data.test is not None:
        summary["test_elbo"] = final_elbos(loop.model, data.test, loop.options.seed, data.test_y, ranks)
        accuracy = _class_mean_accuracy(loop.model, data)
        if accuracy is not None:
            summary["class_mean_accuracy"] = accuracy
    return summary


def _class_mean_accuracy(model, data) -> Optional[float]:
    """For the class-mean prior N(mu_y, I) (Su Jianlin, "Variational autoencoders (1)", 2018, eq. 8):
    the test accuracy of the nearest class mean; None for other models."""
    conditioning = getattr(model, "conditioning", None)
    if conditioning is None or not conditioning.class_prior or data.test_y is None:
        return None
    from ..diagnostics import class_mean_accuracy

    return class_mean_accuracy(model, data.test, data.test_y)


def finish_run(folder: Optional[RunFolder], config: Dict[str, Any], summary: Dict[str, Any],
               metrics: List[Dict[str, Any]], figures: Optional[Any] = None,
               resumed_at: Optional[Tuple[int, int]] = None) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """Write the run folder's final files: metrics, config (with what a resume changed), summary,
    the figures, and ``report.md``. Returns the summary and ``{name: path}``.

    :param figures: the :class:`FigureSource` to draw (None: no figures).
    :param resumed_at: ``(epoch, step)`` a resumed run continued from (None: a fresh run).
    """
    if folder is None:
        return summary, {}
    if resumed_at is not None:
        summary["resumes"] = folder.read_summary().get("resumes", []) + [
            {"epoch": resumed_at[0], "step": resumed_at[1], "changed": _changes(folder.read_config(), config)}]
    folder.write_metrics(metrics)
    folder.write_config(config)
    files = {} if figures is None else figures.draw(folder, metrics, config)
    if figures is not None and figures.note:
        summary["figures"] = figures.note
    summary = folder.update_summary(**summary)
    from ..run_report import write_run_report  # imports plots (matplotlib): only once a run has finished

    files["report"] = str(write_run_report(folder.path))
    return summary, files


@dataclass
class FigureSource:
    """What the figures of a finished run are drawn from: the trained model and its test rows.

    Figures need a pyrovae :class:`~pyrovae.vae.VAE` and test rows; for any other model
    :attr:`note` says why none are drawn (the run report shows it).
    """

    model: Any
    test: Optional[torch.Tensor]
    labels: Optional[torch.Tensor]
    image_shape: Optional[Tuple[int, int]]
    class_names: Optional[Sequence[str]]
    seed: int

    @property
    def note(self) -> str:
        """Empty when figures can be drawn, else the reason they are not."""
        if not isinstance(self.model, VAE):
            return (f"no figures: they draw a pyrovae VAE, and {type(self.model).__name__} is not one "
                    "(draw your own from the trained model)")
        return "" if self.test is not None else "no figures: fit was given no test rows to draw them from"

    def draw(self, folder: RunFolder, metrics: List[Dict[str, Any]], config: Dict[str, Any]) -> Dict[str, str]:
        """Every figure that applies, into the run folder."""
        if self.note:
            return {}
        from ..plots import PlotData, draw_figures  # matplotlib: imported only once a run has finished

        data = PlotData(self.model, self.test, self.labels, self.image_shape, list(metrics), dict(config),
                        self.seed, self.class_names)
        return {kind: str(path) for kind, path in draw_figures(data, folder.path).items()}

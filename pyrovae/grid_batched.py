"""A comparison's latent size trained as one batched model (:class:`pyrovae.batched.BatchedRuns`).

Every (seed, estimator) run of one latent size shares the architecture, so the runs train
together and each gets the numbers it gets alone (to float rounding; ``tests/test_batched.py``).
The learning curve, the gradient probes and the final measurements are those of
:func:`pyrovae.compare.run_one`, taken on each run's own VAE. On resume, a latent size whose
runs all finished is kept; one that did not is trained again from the start (it is one batched
job, and training it again gives the same records).
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

import pyro
import torch

from .batched import BATCHED_ELBOS, BatchedRuns
from .compare import Grid, _gradient_probe, build_vae, measure
from .data import Dataset
from .grid import GridFolder
from .training import resolve_device
from .training.curve import Curve
from .training.loop import TestSet


def batchable(grid: Grid, ranks=None) -> bool:
    """Whether the grid's runs can train batched: estimators with a batched form, one particle, one process."""
    return ranks is None and grid.particles == 1 and all(e in BATCHED_ELBOS for e in grid.estimators)


def run_group(data: Dataset, grid: Grid, z_dim: int, probe: torch.Tensor,
              folder: Optional[GridFolder] = None) -> List[Dict[str, Any]]:
    """Every (seed, estimator) run of latent size ``z_dim``, trained as one batched model."""
    runs = [(seed, est) for seed in range(grid.seeds) for est in grid.estimators]
    kept = [None if folder is None else folder.finished(z_dim, seed, est) for seed, est in runs]
    if all(k is not None for k in kept):
        return kept
    device = resolve_device(grid.device)
    vaes, probe = _initial_vaes(data, grid, z_dim, runs, device), probe.to(device)
    grads = [{0: _gradient_probe(v, probe, grid.estimators, 1, grid.grad_repeats, s)} for v, (s, _) in zip(vaes, runs)]
    budget = grid.budget(len(data.train))
    points, probes_at = budget.points(grid.curve_points), grid.probe_steps(budget)
    curves = [Curve(points, data.train.to(device), None, TestSet(data.test.to(device), None, seed), data.dynamic,
                    seed) for seed, _ in runs]
    records: List[List[Dict[str, Any]]] = [[] for _ in runs]
    paused = [0.0]

    def on_point(step: int) -> None:
        begun = time.perf_counter()
        for r, (vae, (seed, _)) in enumerate(zip(vaes, runs)):
            records[r].append(curves[r].record(vae, step, budget.samples_after(step)))
            if step in probes_at:
                grads[r][records[r][-1]["samples_seen"]] = _gradient_probe(vae, probe, grid.estimators, 1,
                                                                           grid.grad_repeats, seed)
        paused[0] += time.perf_counter() - begun

    model = BatchedRuns(vaes, [e for _, e in runs], [s for s, _ in runs], data.train.to(device),
                        batch_size=grid.batch_size, optimizer=grid.preset.optimizer, lr=grid.rate, dynamic=data.dynamic)
    start = time.perf_counter()
    model.train(budget, points, on_point)
    per_step = (time.perf_counter() - start - paused[0]) / budget.total_steps / len(runs)  # amortized per run
    out = []
    for r, (vae, (seed, est)) in enumerate(zip(vaes, runs)):
        out.append(measure(vae, data, grid, {
            "estimator": est, "z_dim": z_dim, "seed": seed, "metrics": [], "curve": records[r],
            "samples_seen": budget.samples_after(budget.total_steps), "gradients": grads[r], "device": str(device),
            "seconds_per_step": per_step, "batched": len(runs)}))
        if folder is not None:
            folder.keep(out[-1])
    return out


def _initial_vaes(data: Dataset, grid: Grid, z_dim: int, runs, device: torch.device) -> List:
    """Each run's VAE with the initial weights it has when it trains alone."""
    vaes = []
    for seed, _ in runs:
        pyro.set_rng_seed(seed)
        vaes.append(build_vae(data, grid, z_dim).to(device))
    return vaes

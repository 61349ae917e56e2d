"""Check the compiled step (Inductor) against eager mode for every estimator and every posterior family.

For each case a small VAE takes ``--steps`` steps from the same initial weights, minibatches and
random stream, once eagerly and once with ``step="compiled"``; the largest parameter difference
must be at most 1e-10 in float64 and 1e-5 relative in float32. Every estimator is checked with
the default posterior, every family with ``mc`` and, where its KL has a closed form, ``analytic``.
A case that falls back to eager execution (``EagerFallbackWarning``) fails. The CI tests check the
same grid with the captured graph run uncompiled, and Inductor once (``tests/test_compiled.py``);
this script compiles every case (seconds each, cached on disk for the next run).

    python benchmarks/check_compiled.py                     # CPU, float64 and float32
    python benchmarks/check_compiled.py --device cuda       # the same on a GPU (CUDA graphs on)
    python benchmarks/check_compiled.py --dtypes float64 --limit 2 --out /tmp/check.json   # smoke

Writes ``benchmarks/results/check_compiled_<device>.json`` and exits 1 if any case fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import pyro
import torch

from baselines import environment
from pyrovae import FAMILIES, VAE
from pyrovae.estimators import ESTIMATORS, estimator
from pyrovae.families import closed_form_table
from pyrovae.fastpath import EagerFallbackWarning, build_step, make_optimizer

TOLERANCE = {torch.float64: (0.0, 1e-10), torch.float32: (1e-5, 1e-6)}  # (rtol, atol)


def train(step_name: str, name: str, posterior: str, device: torch.device, dtype: torch.dtype, steps: int):
    """Parameters after ``steps`` steps of a 32-16-2 VAE, and the seconds the first step took."""
    pyro.clear_param_store()
    pyro.set_rng_seed(1)
    x = torch.bernoulli(torch.rand(200, 32, dtype=dtype)).to(device)
    vae = VAE(32, 2, (16,), posterior=posterior).to(device)
    g = torch.Generator().manual_seed(3)
    idxs = [torch.randperm(len(x), generator=g)[:25].to(device) for _ in range(steps)]
    particles = 1 if ESTIMATORS[name].bound == "elbo" else 3
    optim = make_optimizer(torch.optim.Adam, vae.parameters(), 1e-2, device, capturable=device.type == "cuda")
    step = build_step(step_name, vae, estimator(name, particles, max_plate_nesting=1), optim, device)
    pyro.set_rng_seed(2)
    start = time.perf_counter()
    step(x, idxs[0])
    first = time.perf_counter() - start
    for idx in idxs[1:]:
        step(x, idx)
    return torch.cat([p.detach().flatten() for p in vae.parameters()]), first


def check(name: str, posterior: str, device: torch.device, dtype: torch.dtype, steps: int) -> dict:
    """One case: the largest difference, whether it is within tolerance, and the compile seconds."""
    eager, _ = train("eager", name, posterior, device, dtype, steps)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EagerFallbackWarning)
        try:
            compiled, first = train("compiled", name, posterior, device, dtype, steps)
        except EagerFallbackWarning as fallback:
            return {"ok": False, "error": str(fallback)}
    rtol, atol = TOLERANCE[dtype]
    diff = float((compiled - eager).abs().max())
    ok = bool(torch.allclose(compiled, eager, rtol=rtol, atol=atol))
    return {"ok": ok, "max_abs_diff": diff, "first_step_seconds": first}


def cases():
    """``(estimator, family)`` pairs: every estimator with ``normal``, every family with mc (and analytic)."""
    table = closed_form_table()
    yield from ((name, "normal") for name in ESTIMATORS.names())
    for family in FAMILIES.names():
        if family != "normal":
            yield "mc", family
            if table[family, FAMILIES[family].default_prior] == "yes":
                yield "analytic", family


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtypes", default="float64,float32")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--limit", type=int, default=None, help="check only the first N cases per dtype (a smoke run)")
    p.add_argument("--families", default=None, help="comma-separated: only these families (default: all)")
    p.add_argument("--out", default=None, help="default benchmarks/results/check_compiled_<device>.json")
    args = p.parse_args()
    device = torch.device(args.device)
    rows = []
    for dtype in (getattr(torch, d) for d in args.dtypes.split(",")):
        torch.set_default_dtype(dtype)  # what the families' own constants are made in
        chosen = [(n, f) for n, f in cases() if args.families is None or f in args.families.split(",")]
        for name, family in chosen[: args.limit]:
            row = {"dtype": str(dtype).replace("torch.", ""), "estimator": name, "family": family,
                   **check(name, family, device, dtype, args.steps)}
            print(f"{row['dtype']:>8} {name:>9} {family:>16}  {'ok' if row['ok'] else 'FAILED':>6}  "
                  f"{row.get('max_abs_diff', float('nan')):9.2e}  {row.get('error', '')}", flush=True)
            rows.append(row)
    failed = [r for r in rows if not r["ok"]]
    print(f"{len(rows) - len(failed)}/{len(rows)} cases within tolerance")
    out = Path(args.out or f"benchmarks/results/check_compiled_{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": "python benchmarks/check_compiled.py " + " ".join(sys.argv[1:]),
                               "environment": environment(device), "steps": args.steps, "cases": rows},
                              indent=2) + "\n")
    print(f"wrote {out}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

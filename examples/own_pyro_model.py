"""pyrovae's estimators on your own Pyro model: Bayesian linear regression, no VAE involved.

Every pyrovae estimator is an ordinary Pyro ELBO, so it goes straight into
``pyro.infer.SVI(model, guide, optim, loss=pyrovae.estimator(NAME))``. The model
here has an exact answer to check against:

    w ~ N(0, I_d),   y_i ~ N(x_i . w, sigma^2)  for i in a pyro.plate of n points

Its posterior is Gaussian with precision ``I + X^T X / sigma^2``. The columns
of ``X`` are orthogonal, so that precision is diagonal and the exact posterior
is a member of the mean-field guide's family ``N(loc, diag(scale^2))``. Each
estimator (``mc``, ``analytic``, ``stl``, ``dreg``) trains the guide from the
same start with the same noise, and the script reports how far each ends from
the exact posterior. At the exact posterior ``log p(y, w) - log q(w)`` is the
same for every ``w``, so the ``stl`` and ``dreg`` gradients are exactly zero
there and their iterates settle on it, while ``mc`` and ``analytic`` keep
jittering around it (Roeder et al. 2017; Tucker et al. 2018).

    python examples/own_pyro_model.py            # 3000 steps; figure in docs/tutorials/img/
    python examples/own_pyro_model.py --smoke    # 600 steps, checks, figure in a temporary folder
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Dict, List

import matplotlib
import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints

import pyrovae

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "img"
ESTIMATORS = {"mc": 1, "analytic": 1, "stl": 1, "dreg": 4}  # name -> num_particles (K for dreg)
SIGMA = 1.0  # observation noise, known


def make_data(n: int = 100, seed: int = 0):
    """Orthogonal design ``X`` (columns of norms 2..8), true weights and responses."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, 4, generator=g))
    X = q * torch.tensor([2.0, 4.0, 6.0, 8.0])
    w_true = torch.tensor([1.0, -2.0, 0.5, 3.0])
    y = X @ w_true + SIGMA * torch.randn(n, generator=g)
    return X, y, w_true


def exact_posterior(X: torch.Tensor, y: torch.Tensor):
    """Mean and standard deviations of ``p(w | X, y)`` (diagonal because ``X^T X`` is)."""
    precision = 1.0 + (X * X).sum(0) / SIGMA**2
    return (X.T @ y) / SIGMA**2 / precision, precision.rsqrt()


def model(X: torch.Tensor, y: torch.Tensor) -> None:
    w = pyro.sample("w", dist.Normal(torch.zeros(X.shape[1]), 1.0).to_event(1))
    with pyro.plate("data", len(y)):
        # (X * w).sum(-1), not X @ w: with vectorized particles w has shape (K, 1, d), and this
        # broadcasts to (K, n) as well as to (n,) for a single w.
        pyro.sample("y", dist.Normal((X * w).sum(-1), SIGMA), obs=y)


def guide(X: torch.Tensor, y: torch.Tensor) -> None:
    loc = pyro.param("loc", torch.zeros(X.shape[1]))
    scale = pyro.param("scale", torch.ones(X.shape[1]), constraint=constraints.positive)
    pyro.sample("w", dist.Normal(loc, scale).to_event(1))


def train(name: str, X, y, steps: int, exact) -> List[float]:
    """SVI with the named pyrovae estimator; the distance to the exact posterior after each step."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)  # the same start and the same noise for every estimator
    loss = pyrovae.estimator(name, num_particles=ESTIMATORS[name], max_plate_nesting=1)
    # A decaying step size (Robbins-Monro): lr 0.05 * 0.999^step.
    svi = pyro.infer.SVI(model, guide, pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.999}), loss=loss)
    errors = []
    for _ in range(steps):
        svi.step(X, y)
        errors.append(distance(exact))
    return errors


def distance(exact) -> float:
    """Largest absolute error of the guide's means and standard deviations."""
    mean, sd = exact
    return max((pyro.param("loc") - mean).abs().max().item(), (pyro.param("scale") - sd).abs().max().item())


def figure(errors: Dict[str, List[float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, err in errors.items():
        # mc tracks analytic closely: draw it dashed, on top.
        ax.semilogy(range(1, len(err) + 1), err, "--" if name == "mc" else "-", label=name, lw=1,
                    zorder=3 if name == "mc" else 2)
    ax.set(xlabel="SVI step", ylabel="max |guide - exact posterior|",
           title="Bayesian linear regression: distance to the exact posterior")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="pyrovae estimators on a Bayesian linear regression.")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--smoke", action="store_true", help="600 steps, figure into a temporary folder")
    p.add_argument("--figures", type=Path, default=None, help=f"figure folder (default {FIGURES})")
    args = p.parse_args(argv)
    steps = 600 if args.smoke else args.steps
    out = args.figures or (Path(tempfile.mkdtemp()) if args.smoke else FIGURES)
    torch.set_default_dtype(torch.float64)  # the exact-posterior check compares to 1e-6

    X, y, w_true = make_data()
    exact = exact_posterior(X, y)
    print(f"true w        {w_true.tolist()}")
    print(f"exact mean    {[round(v, 4) for v in exact[0].tolist()]}")
    print(f"exact sd      {[round(v, 4) for v in exact[1].tolist()]}")
    errors = {}
    for name in ESTIMATORS:
        errors[name] = train(name, X, y, steps, exact)
        loc, scale = pyro.param("loc").detach(), pyro.param("scale").detach()
        print(f"{name:<9} guide mean {[round(v, 4) for v in loc.tolist()]}, "
              f"sd {[round(v, 4) for v in scale.tolist()]}, final error {errors[name][-1]:.1e}")
        # Every estimator lands near the exact posterior: within half a posterior sd.
        assert ((loc - exact[0]).abs() < 0.5 * exact[1]).all(), name
    assert ((exact[0] - w_true).abs() < 3 * exact[1]).all(), "the posterior should cover the true weights"
    # Sticking the landing: stl's iterates reach the exact posterior itself.
    assert errors["stl"][-1] < 1e-4, "stl should settle on the exact posterior"
    out.mkdir(parents=True, exist_ok=True)
    figure(errors, out / "own_model_convergence.png")
    print(f"figure: {out / 'own_model_convergence.png'}")


if __name__ == "__main__":
    main()

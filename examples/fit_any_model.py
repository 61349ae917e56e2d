"""``pyrovae.fit`` on a Pyro model that is not a VAE: a Poisson factor model with an amortized guide.

    z_n ~ N(0, I_K),   x_nd | z_n ~ Poisson(exp(w_d . z_n + b_d)),   q(z_n | x_n) = N(A log(1 + x_n) + c, diag s^2)

The module has ordinary Pyro ``model(x, subsample)`` and ``guide(x, subsample)`` methods over
``pyro.plate("data", N, subsample=subsample)``, the convention ``fit`` documents
(``pyrovae.TrainableModel``). ``fit`` then gives it everything it gives a VAE: every ELBO
estimator, the recorded step, checkpoints and a bit-exact resume, the NaN diagnosis, torchrun
and the per-epoch test ELBO. The script trains it with ``auto`` and with ``iwae``, interrupts a
run and resumes it, and checks that the resumed parameters equal an uninterrupted run's.

    python examples/fit_any_model.py            # 2,000 rows, 30 epochs
    python examples/fit_any_model.py --smoke    # 400 rows, 4 epochs
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from torch import nn

import pyrovae


class PoissonFactors(nn.Module):
    """Counts driven by K latent factors; the guide is a linear encoder of ``log(1 + x)``."""

    def __init__(self, x_dim: int, z_dim: int) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.loadings = nn.Linear(z_dim, x_dim)
        self.encoder = nn.Linear(x_dim, 2 * z_dim)

    def model(self, x, subsample=None):
        with pyro.plate("data", len(x), subsample=subsample) as idx:
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.z_dim), 1.0).to_event(1))
            pyro.sample("x", dist.Poisson(self.loadings(z).exp()).to_event(1), obs=x[idx])

    def guide(self, x, subsample=None):
        with pyro.plate("data", len(x), subsample=subsample) as idx:
            loc, log_scale = self.encoder(torch.log1p(x[idx])).chunk(2, dim=-1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))


def simulate(n: int, x_dim: int = 12, z_dim: int = 2, seed: int = 0) -> torch.Tensor:
    """Counts from a Poisson factor model with seeded loadings."""
    g = torch.Generator().manual_seed(seed)
    w, z = 0.7 * torch.randn(x_dim, z_dim, generator=g), torch.randn(n, z_dim, generator=g)
    return torch.poisson((z @ w.T + 1.0).exp(), generator=g)


def train(x: torch.Tensor, epochs: int, out=None, resume=False, **options) -> pyrovae.FitResult:
    """Fit a fresh (seeded) model on 80% of ``x``; the rest is the test set."""
    torch.manual_seed(0)
    split = int(0.8 * len(x))
    return pyrovae.fit(PoissonFactors(x.shape[1], 2), x[:split], x[split:], epochs=epochs, batch_size=50,
                       lr=0.02, device="cpu", progress=False, out=out, resume=resume, **options)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="400 rows, 4 epochs")
    args = p.parse_args()
    x, epochs = simulate(400 if args.smoke else 2000), 4 if args.smoke else 30
    for name, particles in (("auto", 1), ("iwae", 8)):
        result = train(x, epochs, estimator=name, num_particles=particles)
        first, last = result.metrics[0]["test_elbo"], result.metrics[-1]["test_elbo"]
        print(f"{name:<5} test ELBO {first:.2f} -> {last:.2f} nats/row; KL routes {result.summary['kl_routes']}")
        assert last > first, "training should improve the test ELBO"
    with tempfile.TemporaryDirectory() as tmp:
        whole = train(x, epochs, out=Path(tmp, "whole"))
        train(x, epochs // 2, out=Path(tmp, "part"))  # a run stopped half way ...
        resumed = train(x, epochs, out=Path(tmp, "part"), resume=True)  # ... and continued
        same = all(torch.equal(a, b) for a, b in zip(whole.model.state_dict().values(),
                                                     resumed.model.state_dict().values()))
        print(f"resumed run equals the uninterrupted one bit for bit: {same}")
        assert same


if __name__ == "__main__":
    main()

"""Factor analysis with an amortized guide: a Pyro model that is not a pyrovae ``VAE`` (tests only).

    z_n ~ N(0, I_K),  x_n | z_n ~ N(W z_n + mu, diag(psi)),   q(z_n | x_n) = N(A x_n + b, diag(s(x_n))).

It follows the convention ``fit`` documents (:class:`pyrovae.training.TrainableModel`):
``model(x, subsample)`` and ``guide(x, subsample)`` over ``pyro.plate("data", N, subsample=...)``,
and offers none of the VAE's optional hooks. Its marginal is Gaussian,
``x ~ N(mu, W W^T + diag(psi))`` (Tipping & Bishop 1999), so ``exact_log_likelihood`` is exact.
"""

import pyro
import pyro.distributions as dist
import torch
from torch import nn


class FactorAnalysis(nn.Module):
    """A linear-Gaussian latent factor model with a linear encoder as its guide."""

    def __init__(self, x_dim: int, z_dim: int) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.W = nn.Parameter(0.1 * torch.randn(x_dim, z_dim))
        self.mu = nn.Parameter(torch.zeros(x_dim))
        self.log_psi = nn.Parameter(torch.zeros(x_dim))
        self.encoder = nn.Linear(x_dim, 2 * z_dim)

    def model(self, x, subsample=None):
        with pyro.plate("data", len(x), subsample=subsample) as idx:
            zero = x.new_zeros(self.z_dim)
            z = pyro.sample("z", dist.Normal(zero, 1.0).to_event(1))
            loc = z @ self.W.T + self.mu
            pyro.sample("x", dist.Normal(loc, (0.5 * self.log_psi).exp()).to_event(1), obs=x[idx])

    def guide(self, x, subsample=None):
        with pyro.plate("data", len(x), subsample=subsample) as idx:
            loc, log_scale = self.encoder(x[idx]).chunk(2, dim=-1)
            pyro.sample("z", dist.Normal(loc, log_scale.exp()).to_event(1))

    @torch.no_grad()
    def exact_log_likelihood(self, x: torch.Tensor) -> float:
        """Mean log p(x) of the rows under the Gaussian marginal, nats per row."""
        cov = self.W @ self.W.T + torch.diag(self.log_psi.exp())
        return float(dist.MultivariateNormal(self.mu, covariance_matrix=cov).log_prob(x).mean())


def simulate(n: int, x_dim: int = 6, z_dim: int = 2, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """``n`` rows from a factor-analysis model with fixed, seeded parameters."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(x_dim, z_dim, generator=g, dtype=dtype)
    z = torch.randn(n, z_dim, generator=g, dtype=dtype)
    return z @ W.T + 1.0 + 0.3 * torch.randn(n, x_dim, generator=g, dtype=dtype)

"""The probabilistic PCA model: a linear-Gaussian ground truth for the estimators.

:class:`PPCA` is the model behind the ``synthetic`` dataset. Its marginal
likelihood and posterior are known exactly, so the estimators can be checked
against the truth.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import PyroVAEError


class PPCA:
    """Probabilistic PCA x = W z + b + s*eps, z ~ N(0, I_k), eps ~ N(0, I_d).

    Parameters are kept as tensors of one floating dtype (float64 unless the
    given ``W`` is already a floating tensor), since the exact log-likelihood
    and posterior serve as references for the estimators.
    """

    def __init__(self, W: Any, b: Any, s: float) -> None:
        W_t = torch.as_tensor(W)
        dtype = W_t.dtype if W_t.is_floating_point() else torch.float64
        self.W = W_t.to(dtype)
        self.b = torch.as_tensor(b).to(dtype)
        self.s = torch.as_tensor(float(s), dtype=dtype)
        self._check()

    def _check(self) -> None:
        """Reject shapes and noise levels that do not define a PPCA model."""
        if self.W.ndim != 2 or min(self.W.shape) < 1:
            raise PyroVAEError(f"PPCA W must be a (d, k) matrix, got shape {tuple(self.W.shape)}")
        if self.b.shape != (self.x_dim,):
            raise PyroVAEError(f"PPCA b must have shape ({self.x_dim},) to match W, got {tuple(self.b.shape)}")
        if not (math.isfinite(float(self.s)) and float(self.s) > 0):
            raise PyroVAEError(f"PPCA noise s must be a finite number > 0, got {float(self.s)}")
        if not bool(torch.isfinite(self.W).all() and torch.isfinite(self.b).all()):
            raise PyroVAEError("PPCA W and b must be finite")

    @property
    def x_dim(self) -> int:
        """Data dimension d."""
        return int(self.W.shape[0])

    @property
    def z_dim(self) -> int:
        """Latent dimension k."""
        return int(self.W.shape[1])

    @classmethod
    def random(
        cls,
        x_dim: int,
        z_dim: int,
        *,
        noise: float = 0.5,
        seed: int = 0,
        orthogonal: bool = True,
        dtype: torch.dtype = torch.float64,
    ) -> "PPCA":
        """A random model. With ``orthogonal`` the columns of W are orthogonal with
        norms spread over [1, 3], so the exact posterior is a diagonal Normal."""
        if not (1 <= z_dim and 1 <= x_dim):
            raise PyroVAEError(f"PPCA needs x_dim >= 1 and z_dim >= 1, got {x_dim} and {z_dim}")
        if orthogonal and z_dim > x_dim:
            raise PyroVAEError(f"orthogonal PPCA needs z_dim <= x_dim, got z_dim={z_dim} > x_dim={x_dim}")
        g = torch.Generator().manual_seed(seed)
        W = torch.randn(x_dim, z_dim, generator=g, dtype=torch.float64)
        if orthogonal:
            # Orthonormal columns from QR, then distinct lengths so the latent axes are identifiable.
            q, _ = torch.linalg.qr(W)
            W = q * (1.0 + 2.0 * torch.rand(z_dim, generator=g, dtype=torch.float64))
        b = torch.randn(x_dim, generator=g, dtype=torch.float64)
        return cls(W.to(dtype), b.to(dtype), noise)

    def covariance(self) -> torch.Tensor:
        """Marginal covariance W W^T + s^2 I of x, shape (d, d)."""
        eye = torch.eye(self.x_dim, dtype=self.W.dtype)
        return self.W @ self.W.T + self.s**2 * eye

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` data points, shape (n, d)."""
        z = torch.randn(n, self.z_dim, generator=generator, dtype=self.W.dtype)
        eps = torch.randn(n, self.x_dim, generator=generator, dtype=self.W.dtype)
        return z @ self.W.T + self.b + self.s * eps

    def log_prob(self, x: Any) -> torch.Tensor:
        """Exact log N(x; b, W W^T + s^2 I) of each row of ``x`` (n, d), shape (n,)."""
        x = self._rows(x)
        dist = torch.distributions.MultivariateNormal(self.b, covariance_matrix=self.covariance())
        return dist.log_prob(x)

    def posterior(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact posterior p(z | x) = N(loc, diag(scale^2)) for each row of ``x``.

        Returns ``loc`` (n, k) and ``scale`` (k,), the standard deviations
        (the same for every row). Needs W^T W diagonal, so that the posterior
        covariance (I + W^T W / s^2)^-1 is diagonal.
        """
        x = self._rows(x)
        gram = self.W.T @ self.W
        diag = torch.diagonal(gram)
        off = gram - torch.diag(diag)
        # Relative tolerance: QR-made columns are orthogonal only up to rounding.
        if float(off.abs().max()) > 1e-8 * float(diag.max()):
            raise PyroVAEError(
                "PPCA posterior is not diagonal because W's columns are not orthogonal; "
                "use PPCA.random(..., orthogonal=True)"
            )
        s2 = self.s**2
        var = 1.0 / (1.0 + diag / s2)
        loc = (x - self.b) @ self.W / s2 * var
        return loc, var.sqrt()

    def _rows(self, x: Any) -> torch.Tensor:
        """``x`` as an (n, d) tensor of the model's dtype."""
        x = torch.as_tensor(x).to(self.W.dtype)
        if x.ndim != 2 or x.shape[1] != self.x_dim:
            raise PyroVAEError(f"PPCA expects rows of shape (n, {self.x_dim}), got {tuple(x.shape)}")
        return x

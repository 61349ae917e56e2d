"""Small Pyro models of every structure Pyro's own inference tests use, with their exact answers.

Each :class:`Kind` is an ordinary Pyro ``model``/``guide`` pair on fixed data, written
so that it runs with vectorized particles (every tensor computed from a latent
broadcasts over a leading particle dimension) and with one draw at a time. All
are linear-Gaussian, so the exact log marginal likelihood is a Gaussian density;
where a guide family can hold the exact posterior, :attr:`Kind.exact` sets its
parameters there, and then ``log p(x, z) - log q(z)`` is the same for every draw.

Build them inside a float64 test (the data are created on demand).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.distributions import constraints

SIGMA = 0.6  # observation noise of every model


def params(name: str, shape) -> Tuple[torch.Tensor, torch.Tensor]:
    """A guide's Normal parameters ``(loc, scale)`` for the site ``name``, deterministic at creation."""
    n = int(torch.Size(shape).numel())
    loc = pyro.param(f"{name}_loc", lambda: torch.linspace(-0.4, 0.5, n).reshape(shape))
    scale = pyro.param(f"{name}_scale", lambda: torch.linspace(0.7, 1.1, n).reshape(shape),
                       constraint=constraints.positive)
    return loc, scale


def posterior(obs: torch.Tensor, count: int = 1) -> Tuple[torch.Tensor, torch.Tensor]:
    """Exact posterior ``(mean, sd)`` of ``z ~ N(0, 1)`` after ``count`` observations ``N(z, SIGMA)`` summing to ``obs``."""
    precision = 1.0 + count / SIGMA**2
    return obs / SIGMA**2 / precision, torch.full_like(obs, precision**-0.5)


def evidence(obs: torch.Tensor, prior_cov: torch.Tensor) -> torch.Tensor:
    """``log N(obs; 0, SIGMA^2 I + prior_cov)``: the log marginal likelihood of a linear-Gaussian model."""
    cov = SIGMA**2 * torch.eye(len(obs)) + prior_cov
    return dist.MultivariateNormal(torch.zeros(len(obs)), cov).log_prob(obs)


def marginal(obs: torch.Tensor) -> torch.Tensor:
    """Per-element ``log N(x; 0, sqrt(1 + SIGMA^2))``: ``z ~ N(0, 1)``, ``x ~ N(z, SIGMA)``."""
    return dist.Normal(0.0, math.sqrt(1 + SIGMA**2)).log_prob(obs)


@dataclass
class Kind:
    """One model structure.

    :param weighting: what ``iwae`` must report with K > 1 (``"local"`` or ``"joint"``).
    :param renyi: whether Pyro's ``RenyiELBO(alpha=0)`` weights the same way (else see ``outer``).
    :param exact: ``() -> (params, value)``: guide parameters at the exact posterior, and the
        exact value of every bound there; None where the guide family cannot hold it.
    :param outer: for local weights, the per-element scale outside the log-mean-exp.
    :param shared: sites outside the local plate, counted once.
    """

    name: str
    model: Callable
    guide: Callable
    args: tuple
    nesting: int
    weighting: str
    renyi: bool = True
    exact: Optional[Callable[[], Tuple[Dict[str, torch.Tensor], float]]] = None
    outer: object = 1.0
    shared: Tuple[str, ...] = ()
    local_dim: int = -1
    log_p: Optional[Callable[[], float]] = None
    extra: Dict[str, object] = field(default_factory=dict)


def _handlers(scale, mask):
    """``poutine.scale`` and ``poutine.mask`` where given (each a no-op otherwise)."""
    return (poutine.scale(scale=scale) if scale is not None else contextlib.nullcontext(),
            poutine.mask(mask=mask) if mask is not None else contextlib.nullcontext())


def _one_plate(x, scale=None, mask=None):
    """``z_i ~ N(0, 1)``, ``x_i ~ N(z_i, SIGMA)`` in plate 'data', under optional scale and mask handlers."""
    def model(x):
        scaled, masked = _handlers(scale, mask)
        with pyro.plate("data", len(x)), scaled, masked:
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, SIGMA), obs=x)

    def guide(x):
        loc, scale_ = params("z", (len(x),))
        scaled, masked = _handlers(scale, mask)
        with pyro.plate("data", len(x)), scaled, masked:
            pyro.sample("z", dist.Normal(loc, scale_))

    return model, guide


def _exact_one_plate(x, weights=None):
    def exact():
        mean, sd = posterior(x)
        w = torch.ones_like(x) if weights is None else weights
        return {"z_loc": mean, "z_scale": sd}, float((w * marginal(x)).sum())
    return exact


def no_plate() -> Kind:
    x = torch.tensor(0.8)

    def model(x):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, SIGMA), obs=x)

    def guide(x):
        loc, scale = params("z", ())
        pyro.sample("z", dist.Normal(loc, scale))

    def exact():
        mean, sd = posterior(x)
        return {"z_loc": mean, "z_scale": sd}, float(marginal(x))

    return Kind("no plate", model, guide, (x,), 0, "joint", exact=exact)


def one_plate() -> Kind:
    x = torch.tensor([0.8, -1.2, 0.3, 2.0, -0.5])
    model, guide = _one_plate(x)
    return Kind("one plate", model, guide, (x,), 1, "local", exact=_exact_one_plate(x))


def nested_plates() -> Kind:
    x = torch.tensor([[0.8, 1.1, 0.5], [-1.2, -0.7, -1.5], [0.3, 0.0, 0.6], [2.0, 1.4, 1.8]])

    def model(x):
        with pyro.plate("outer", 4, dim=-2):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            with pyro.plate("inner", 3, dim=-1):
                pyro.sample("x", dist.Normal(z, SIGMA), obs=x)

    def guide(x):
        loc, scale = params("z", (4, 1))
        with pyro.plate("outer", 4, dim=-2):
            pyro.sample("z", dist.Normal(loc, scale))

    def exact():
        mean, sd = posterior(x.sum(-1, keepdim=True), count=3)
        return {"z_loc": mean, "z_scale": sd}, float(sum(evidence(row, torch.ones(3, 3)) for row in x))

    return Kind("nested plates", model, guide, (x,), 2, "local", exact=exact, local_dim=-2)


def _two_plates(n_latent: int, y: torch.Tensor, reads: Callable[[torch.Tensor], torch.Tensor]):
    """Latents in plate 'a', observations in plate 'b' at the same dim (not nested); ``y ~ N(reads(z), SIGMA)``."""
    def model(y):
        with pyro.plate("a", n_latent, dim=-1):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
        with pyro.plate("b", len(y), dim=-1):
            pyro.sample("y", dist.Normal(reads(z), SIGMA), obs=y)

    def guide(y):
        loc, scale = params("z", (n_latent,))
        with pyro.plate("a", n_latent, dim=-1):
            pyro.sample("z", dist.Normal(loc, scale))

    def prior_guide(y):
        with pyro.plate("a", n_latent, dim=-1):
            pyro.sample("z", dist.Normal(0.0, 1.0))

    return model, guide, prior_guide


def non_nested_paired() -> Kind:
    """Element b of plate 'b' reads element b of plate 'a'."""
    y = torch.tensor([0.9, -0.4, 1.6])
    model, guide, _ = _two_plates(3, y, lambda z: z)
    return Kind("non-nested plates, paired", model, guide, (y,), 1, "joint", exact=_exact_one_plate(y))


def _coupled(n_latent: int, y: torch.Tensor):
    """Every observation reads the sum of all latents: ``y_b ~ N(sum_a z_a, SIGMA)``; and the exact log p(y)."""
    model, guide, prior_guide = _two_plates(n_latent, y, lambda z: z.sum(-1, keepdim=True))
    return model, guide, prior_guide, lambda: float(evidence(y, n_latent * torch.ones(len(y), len(y))))


def non_nested_coupled() -> Kind:
    y = torch.tensor([1.3, 0.9])
    model, guide, prior_guide, log_p = _coupled(2, y)
    return Kind("non-nested plates, same size, coupled", model, guide, (y,), 1, "joint", log_p=log_p,
                extra={"prior_guide": prior_guide})


def non_nested_sizes() -> Kind:
    y = torch.tensor([1.3, 0.9, 1.7])
    model, guide, prior_guide, log_p = _coupled(2, y)
    return Kind("non-nested plates, different sizes", model, guide, (y,), 1, "joint", log_p=log_p)


def subsampled() -> Kind:
    x = torch.tensor([0.8, -1.2, 0.3, 2.0, -0.5, 1.1, -0.9, 0.4])
    idx = torch.tensor([1, 4, 6, 7])

    def model(x, idx):
        with pyro.plate("data", len(x), subsample=idx):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, SIGMA), obs=x[idx])

    def guide(x, idx):
        loc, scale = params("z", (len(x),))
        with pyro.plate("data", len(x), subsample=idx):
            pyro.sample("z", dist.Normal(loc[idx], scale[idx]))

    def exact():
        mean, sd = posterior(x)
        return {"z_loc": mean, "z_scale": sd}, float(2.0 * marginal(x[idx]).sum())  # N/M = 8/4

    return Kind("subsampled plate", model, guide, (x, idx), 1, "local", renyi=False, exact=exact, outer=2.0)


def sequential() -> Kind:
    x = torch.tensor([0.8, -1.2, 0.3])

    def model(x):
        for i in pyro.plate("seq", len(x)):
            z = pyro.sample(f"z_{i}", dist.Normal(0.0, 1.0))
            pyro.sample(f"x_{i}", dist.Normal(z, SIGMA), obs=x[i])

    def guide(x):
        loc, scale = params("z", (len(x),))
        for i in pyro.plate("seq", len(x)):
            pyro.sample(f"z_{i}", dist.Normal(loc[i], scale[i]))

    return Kind("sequential plate", model, guide, (x,), 0, "joint", exact=_exact_one_plate(x))


def scalar_scale() -> Kind:
    x = torch.tensor([0.8, -1.2, 0.3, 2.0, -0.5])
    model, guide = _one_plate(x, scale=0.5)
    return Kind("poutine.scale, scalar", model, guide, (x,), 1, "local", renyi=False,
                exact=_exact_one_plate(x, 0.5 * torch.ones(5)), outer=0.5)


def tensor_scale() -> Kind:
    x = torch.tensor([0.8, -1.2, 0.3, 2.0, -0.5])
    w = torch.tensor([1.0, 2.0, 0.5, 0.25, 3.0])  # per-datum weights (Pyro refuses a weight of 0)
    model, guide = _one_plate(x, scale=w)
    return Kind("poutine.scale, tensor", model, guide, (x,), 1, "local", renyi=False,
                exact=_exact_one_plate(x, w), outer=w)


def poutine_mask() -> Kind:
    x = torch.tensor([0.8, -1.2, 0.3, 2.0, -0.5])
    m = torch.tensor([True, False, True, True, False])
    model, guide = _one_plate(x, mask=m)
    return Kind("poutine.mask", model, guide, (x,), 1, "local", exact=_exact_one_plate(x, m.double()))


def distribution_mask() -> Kind:
    """``.mask(m)`` on the observations, and a latent ``u`` masked out entirely with ``.mask(False)``."""
    x = torch.tensor([0.8, -1.2, 0.3, 2.0, -0.5])
    m = torch.tensor([True, False, True, True, False])

    def model(x):
        with pyro.plate("data", len(x)):
            pyro.sample("u", dist.Normal(0.0, 1.0).mask(False))
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, SIGMA).mask(m), obs=x)

    def guide(x):
        u_loc, u_scale = params("u", (len(x),))
        loc, scale = params("z", (len(x),))
        with pyro.plate("data", len(x)):
            pyro.sample("u", dist.Normal(u_loc, u_scale).mask(False))
            pyro.sample("z", dist.Normal(loc, scale))

    def exact():
        mean, sd = posterior(x)  # a masked observation leaves its z at the prior
        return ({"z_loc": torch.where(m, mean, 0.0), "z_scale": torch.where(m, sd, 1.0)},
                float(marginal(x)[m].sum()))

    return Kind(".mask() on distributions", model, guide, (x,), 1, "local", exact=exact)


def global_and_local() -> Kind:
    """``theta ~ N(0, 1)``, ``z_i ~ N(theta, 1)``, ``x_i ~ N(z_i, SIGMA)``; the guide is structured."""
    x = torch.tensor([0.8, -1.2, 0.3, 2.0, -0.5])

    def model(x):
        theta = pyro.sample("theta", dist.Normal(0.0, 1.0))
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(theta, 1.0))
            pyro.sample("x", dist.Normal(z, SIGMA), obs=x)

    def guide(x):
        t_loc, t_scale = params("theta", ())
        gain = pyro.param("gain", torch.tensor(0.5))
        shift, scale = params("z", (len(x),))
        theta = pyro.sample("theta", dist.Normal(t_loc, t_scale))
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(gain * theta + shift, scale))

    def exact():
        v = 1 + SIGMA**2  # x_i | theta ~ N(theta, v)
        t_prec = 1 + len(x) / v
        z_prec = 1 + 1 / SIGMA**2  # z_i | theta, x_i
        found = {"theta_loc": x.sum() / v / t_prec, "theta_scale": torch.tensor(t_prec**-0.5),
                 "gain": torch.tensor(1 / z_prec), "z_loc": x / SIGMA**2 / z_prec,
                 "z_scale": torch.full_like(x, z_prec**-0.5)}
        return found, float(evidence(x, torch.eye(len(x)) + torch.ones(len(x), len(x))))

    return Kind("global and local latents", model, guide, (x,), 1, "joint", exact=exact)


def global_observation() -> Kind:
    """An observation ``g ~ N(mu, 1)`` outside every plate, of a parameter only, beside local latents."""
    x = torch.tensor([0.8, -1.2, 0.3, 2.0, -0.5])
    g = torch.tensor(1.5)
    local_model, guide = _one_plate(x)

    def model(x):
        mu = pyro.param("mu", torch.tensor(0.3))
        pyro.sample("g", dist.Normal(mu, 1.0), obs=g)
        local_model(x)

    def exact():
        found, value = _exact_one_plate(x)()
        return found, value + float(dist.Normal(0.3, 1.0).log_prob(g))

    # d/dmu of the bound: the Normal score (g - mu), whatever the latents do.
    return Kind("observed site outside plates", model, guide, (x,), 1, "local", renyi=False, exact=exact,
                shared=("g",), extra={"mu_grad": lambda mu: -(g - mu)})


def coupled_observation() -> Kind:
    """An observation outside the plate that reads every local latent: ``s ~ N(sum_i z_i, SIGMA)``."""
    x = torch.tensor([0.8, -1.2, 0.3])
    s = torch.tensor(0.5)
    _, guide = _one_plate(x)

    def model(x):
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z, SIGMA), obs=x)
        pyro.sample("s", dist.Normal(z.sum(-1, keepdim=True), SIGMA), obs=s)

    return Kind("observed site outside plates, reading the latents", model, guide, (x,), 1, "joint")


def factor() -> Kind:
    """``pyro.factor`` outside every plate (a penalty on a parameter) beside local latents."""
    x = torch.tensor([0.8, -1.2, 0.3, 2.0, -0.5])
    local_model, guide = _one_plate(x)

    def model(x):
        mu = pyro.param("mu", torch.tensor(0.3))
        pyro.factor("penalty", -0.5 * mu**2)
        local_model(x)

    def exact():
        found, value = _exact_one_plate(x)()
        return found, value - 0.5 * 0.3**2

    return Kind("pyro.factor", model, guide, (x,), 1, "local", renyi=False, exact=exact, shared=("penalty",),
                extra={"mu_grad": lambda mu: mu})


BUILDERS = [no_plate, one_plate, nested_plates, non_nested_paired, non_nested_coupled, non_nested_sizes,
            subsampled, sequential, scalar_scale, tensor_scale, poutine_mask, distribution_mask,
            global_and_local, global_observation, coupled_observation, factor]

#: Kinds whose latents are correlated a posteriori, so no mean-field guide here holds the exact posterior.
CORRELATED = (non_nested_coupled, non_nested_sizes, coupled_observation)
EXACT_BUILDERS = [b for b in BUILDERS if b not in CORRELATED]

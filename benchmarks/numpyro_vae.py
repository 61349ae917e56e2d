"""The NumPyro contender: the same VAE and protocol, with the whole epoch one jitted ``lax.scan``.

784-400-20 ReLU networks initialised as torch initialises ``nn.Linear``, a Gaussian encoder
predicting ``[mu | log sigma^2]``, a Bernoulli decoder, ``TraceMeanField_ELBO`` (the closed-form
KL: SGVB-B, Kingma & Welling 2013, eq. 10), Adam 1e-3, M = 100, and a fresh Bernoulli
binarization of the grey-level training set every epoch. One epoch is one call of a jitted
function: binarize, permute, and ``lax.scan`` of ``svi.update`` over the minibatches, which is
how a NumPyro user gets XLA to fuse the whole step.

Optional: :func:`available` is False where JAX or NumPyro is not installed
(``pip install -e ".[bench]"`` installs them).
"""

from __future__ import annotations

import importlib.util
import math
from typing import Callable, Sequence

import numpy as np


def available() -> bool:
    """Whether NumPyro and JAX can be imported here."""
    return all(importlib.util.find_spec(name) is not None for name in ("jax", "numpyro"))


def _mlp(prefix: str, sizes: Sequence[int]) -> Callable:
    """An MLP whose weights are ``numpyro.param`` sites, drawn as torch's ``nn.Linear`` draws them."""
    import jax
    import numpyro

    def uniform(shape, bound):
        return lambda key: jax.random.uniform(key, shape, minval=-bound, maxval=bound)

    def forward(h):
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            bound = 1 / math.sqrt(n_in)
            w = numpyro.param(f"{prefix}.{i}.w", uniform((n_in, n_out), bound))
            b = numpyro.param(f"{prefix}.{i}.b", uniform((n_out,), bound))
            h = h @ w + b
            if i < len(sizes) - 2:
                h = jax.nn.relu(h)
        return h
    return forward


def programs(x_dim: int = 784, hidden: int = 400, z_dim: int = 20):
    """``(model, guide)`` of the VAE, over a minibatch ``xb`` scaled by ``scale = N/M``."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    decoder, encoder = _mlp("decoder", (z_dim, hidden, x_dim)), _mlp("encoder", (x_dim, hidden, 2 * z_dim))

    def model(xb, scale):
        with numpyro.handlers.scale(scale=scale), numpyro.plate("data", xb.shape[0]):
            z = numpyro.sample("z", dist.Normal(jnp.zeros(z_dim), 1.0).to_event(1))
            numpyro.sample("x", dist.Bernoulli(logits=decoder(z)).to_event(1), obs=xb)

    def guide(xb, scale):
        mu, log_var = jnp.split(encoder(xb), 2, axis=-1)
        with numpyro.handlers.scale(scale=scale), numpyro.plate("data", xb.shape[0]):
            numpyro.sample("z", dist.Normal(mu, jnp.exp(0.5 * log_var)).to_event(1))
    return model, guide


class NumPyroEpochs:
    """``epoch()`` trains one epoch of the NumPyro VAE on the grey-level ``train`` rows and waits for it."""

    def __init__(self, train: np.ndarray, batch: int = 100, lr: float = 1e-3, seed: int = 0) -> None:
        import jax
        import jax.numpy as jnp
        from numpyro.infer import SVI, TraceMeanField_ELBO
        from numpyro.optim import Adam

        self.train = jnp.asarray(train, dtype=jnp.float32)
        n, steps = len(train), len(train) // batch
        model, guide = programs(x_dim=train.shape[1])
        svi = SVI(model, guide, Adam(lr), TraceMeanField_ELBO())
        key, init_key = jax.random.split(jax.random.PRNGKey(seed))
        self.state = svi.init(init_key, self.train[:batch], n / batch)

        @jax.jit
        def epoch(state, data, key):
            draw, order = jax.random.split(key)
            x = jax.random.bernoulli(draw, data).astype(data.dtype)  # dynamic binarization
            batches = jax.random.permutation(order, n)[: steps * batch].reshape(steps, batch)
            state, losses = jax.lax.scan(lambda s, idx: svi.update(s, x[idx], n / batch), state, batches)
            return state, losses

        self._epoch, self.key = epoch, key

    def epoch(self) -> float:
        """Train one epoch; returns its mean loss per data point (nats), after the device is done."""
        import jax

        self.key, key = jax.random.split(self.key)
        self.state, losses = self._epoch(self.state, self.train, key)
        return float(losses.mean()) / len(self.train)

"""The variational auto-encoder as a Pyro model and guide (Kingma & Welling 2013, section 3).

``model(x)`` is the generative model ``p(z) p_theta(x|z)`` and ``guide(x)``
the amortized recognition model ``q_phi(z|x)``. Both are ordinary Pyro
callables: any Pyro ELBO and plain :class:`pyro.infer.SVI` can train them.

Minibatches follow Pyro's subsampling idiom. ``x`` is the whole data set (or
whatever rows the caller wants scored) and ``subsample`` the indices of the
minibatch; ``pyro.plate("data", size=N, subsample=idx)`` then scales every
log-density by ``N/M``, the paper's minibatch estimator (eq. 8).
"""

from __future__ import annotations

from typing import Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from .errors import PyroVAEError
from .families import FAMILIES, PRIORS, check_compatible
from .likelihoods import LIKELIHOODS
from .networks import check_sizes, mlp


class VAE(nn.Module):
    """A VAE whose ``model`` and ``guide`` are plain Pyro callables.

    Parameters are registered with :func:`pyro.module` under ``"encoder"``,
    ``"decoder"`` and ``"likelihood"``; as with any Pyro model, call
    :func:`pyro.clear_param_store` before training a second VAE with plain SVI.

    :param x_dim: size of one (flattened) data point.
    :param z_dim: number of latent dimensions.
    :param hidden: hidden layer sizes of the encoder; the decoder mirrors them.
    :param activation: activation between layers (see ``networks.ACTIVATIONS``).
    :param posterior: family of ``q(z|x)`` (see ``families.FAMILIES``).
    :param prior: a prior in ``families.PRIORS`` (every family with standard parameters,
        and ``mog``); by default the posterior family's ``default_prior``.
    :param likelihood: decoder likelihood (see ``likelihoods.LIKELIHOODS``).
    :param encoder: optional module mapping ``x`` to the posterior's raw head
        ``(..., posterior.head_size(z_dim))``; for ``normal`` that is
        ``[loc | log sigma^2]``.
    :param decoder: optional module mapping ``z`` to the likelihood's raw
        head (logits for ``bernoulli``, the mean for ``normal``).
    """

    def __init__(
        self,
        x_dim: int,
        z_dim: int = 20,
        hidden: Sequence[int] = (400,),
        activation: str = "relu",
        posterior: str = "normal",
        prior: Optional[str] = None,
        likelihood: str = "bernoulli",
        encoder: Optional[nn.Module] = None,
        decoder: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        check_sizes(x_dim=x_dim, z_dim=z_dim, **{f"hidden[{i}]": h for i, h in enumerate(hidden)})
        self.x_dim, self.z_dim, self.hidden = x_dim, z_dim, tuple(hidden)
        self.posterior_family = FAMILIES.get(posterior, "posterior family")
        prior = prior or self.posterior_family.default_prior
        prior_spec = PRIORS.get(prior, "prior family")
        self.names = {"posterior": posterior, "prior": prior, "likelihood": likelihood, "activation": activation}
        check_compatible(self.posterior_family, prior, prior_spec.support)
        self.likelihood_spec = LIKELIHOODS[likelihood]
        self.prior = prior_spec.build(z_dim)
        self.posterior = self.posterior_family.posterior_head(z_dim)
        self.likelihood = self.likelihood_spec.build(x_dim)
        self.encoder = encoder if encoder is not None else mlp(
            [x_dim, *self.hidden, self.posterior_family.head_size(z_dim)], activation)
        self.decoder = decoder if decoder is not None else mlp(
            [z_dim, *reversed(self.hidden), self.likelihood_spec.head_size(x_dim)], activation)

    # -- the two Pyro programs -------------------------------------------------------------

    def model(self, x: torch.Tensor, subsample: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Generative model ``p(z) p(x|z)`` over the rows ``x[subsample]``, scaled by ``N/M``."""
        pyro.module("decoder", self.decoder)
        pyro.module("likelihood", self.likelihood)
        pyro.module("prior", self.prior)
        with pyro.plate("data", size=x.shape[0], subsample=subsample):
            xb = x if subsample is None else x[subsample]
            z = pyro.sample("z", self.prior())
            return pyro.sample("x", self.likelihood(self.decoder(z)), obs=xb)

    def guide(self, x: torch.Tensor, subsample: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Amortized recognition model ``q(z|x)`` over the same rows as :meth:`model`."""
        pyro.module("encoder", self.encoder)
        pyro.module("posterior", self.posterior)
        with pyro.plate("data", size=x.shape[0], subsample=subsample):
            xb = x if subsample is None else x[subsample]
            return pyro.sample("z", self.encode(xb))

    # -- plain-torch views of the same networks ---------------------------------------------

    def encode(self, x: torch.Tensor) -> dist.TorchDistribution:
        """``q(z|x)`` for a batch of rows, event shape ``(z_dim,)``."""
        return self.posterior(self.encoder(self.likelihood_spec.encoder_input(x)))

    def decode(self, z: torch.Tensor) -> dist.TorchDistribution:
        """``p(x|z)`` for a batch of latents, event shape ``(x_dim,)``."""
        return self.likelihood(self.decoder(z))

    def check_data(self, x: torch.Tensor, what: str = "data") -> None:
        """Raise :class:`PyroVAEError` unless ``x`` is ``(N, x_dim)`` inside the likelihood's support."""
        if x.dim() != 2 or x.shape[1] != self.x_dim:
            raise PyroVAEError(f"{what} must have shape (N, {self.x_dim}), got {tuple(x.shape)}")
        self.likelihood_spec.validate(x, what)

    def extra_repr(self) -> str:
        """The sizes and registry names, shown by ``print(vae)``."""
        n = self.names
        return (f"x_dim={self.x_dim}, z_dim={self.z_dim}, hidden={self.hidden}, posterior={n['posterior']!r}, "
                f"prior={n['prior']!r}, likelihood={n['likelihood']!r}")


def vae_from_config(config, x_dim: int) -> VAE:
    """Build the :class:`VAE` a :class:`~pyrovae.config.RunConfig` describes, for data of size ``x_dim``."""
    return VAE(x_dim, config.latent_dim, config.hidden, config.activation,
               config.posterior, config.prior, config.likelihood)

"""The variational auto-encoder as a Pyro model and guide (Kingma & Welling 2013, section 3).

``model(x)`` is the generative model ``p(z) p_theta(x|z)`` and ``guide(x)``
the amortized recognition model ``q_phi(z|x)``. Both are ordinary Pyro
callables: any Pyro ELBO and plain :class:`pyro.infer.SVI` can train them.

Minibatches follow Pyro's subsampling idiom. ``x`` is the whole data set (or
whatever rows the caller wants scored) and ``subsample`` the indices of the
minibatch; ``pyro.plate("data", size=N, subsample=idx)`` then scales every
log-density by ``N/M``, the paper's minibatch estimator (eq. 8).

A class-conditional VAE (``conditional="prior"`` or ``"full"``, see
:mod:`pyrovae.conditional`) also takes the labels ``y`` of the same rows:
``model(x, y, subsample)``. The latent site's log-density is multiplied by
:attr:`VAE.kl_weight` in both programs, so any ELBO estimator optimizes
``recon + kl_weight * KL`` (the beta of beta-VAE, Higgins et al. 2017; see
:mod:`pyrovae.klweight`).

A trained VAE gives back what it learned through :meth:`VAE.sample` (draws of the generative
model), :meth:`VAE.reconstruct` and :meth:`VAE.embed` (the posterior point summary of each row):
detached tensors computed without gradients.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, NamedTuple, Optional, Sequence, Tuple, Union

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from .conditional import CONDITIONINGS, ClassMeanPrior, with_label
from .data import validate_labels
from .errors import PyroVAEError
from .architectures import ARCHITECTURES, NetworkSizes
from .families import FAMILIES, PRIORS, EncoderView, check_compatible
from .hierarchy import LatentStack, compact_hidden, compact_sizes, latent_sizes, layer_hidden
from .klweight import KLWeight
from .likelihoods import LIKELIHOODS
from .summaries import mean_image, posterior_point
from .validation import check_positive, check_rows


class Generated(NamedTuple):
    """What :meth:`VAE.sample` returns: ``n`` rows of latents and of what the decoder makes of them.

    The fields mirror the sites that :class:`pyro.infer.Predictive` would return for the model
    (``z`` and ``x``), plus the decoder's mean, which is what image grids show: sampled
    Bernoulli pixels are speckled, their probabilities are the picture.
    """

    #: Latents drawn from the prior ``p(z)`` (``p(z|y)`` for the class-mean prior), ``(n, z_dim)``;
    #: for several stochastic layers, the top layer's ``z_L ~ p(z_L)``.
    z: torch.Tensor
    #: The decoder's mean ``E[x|z]``: Bernoulli probabilities, a Gaussian's location, the expected
    #: grey level for ``categorical``; ``(n, x_dim)``.
    mean: torch.Tensor
    #: A draw ``x ~ p(x|z)`` of the likelihood, ``(n, x_dim)``.
    x: torch.Tensor


class VAE(nn.Module):
    """A VAE whose ``model`` and ``guide`` are plain Pyro callables.

    Parameters are registered with :func:`pyro.module` under ``"encoder"``,
    ``"decoder"`` and ``"likelihood"``; as with any Pyro model, call
    :func:`pyro.clear_param_store` before training a second VAE with plain SVI.

    :param x_dim: size of one (flattened) data point.
    :param z_dim: number of latent dimensions; a tuple ``(100, 50)`` gives one stochastic layer per
        size, bottom-up, with Pyro sites ``z1, z2, ...`` (see :mod:`pyrovae.hierarchy`).
    :param hidden: hidden layer sizes of the encoder; the decoder mirrors them. With several
        stochastic layers, one tuple per layer (``((100, 100), (50, 50))``) or one reused by all.
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
    :param conditional: ``none``, ``prior`` (prior ``N(mu_y, I)``, eq. 8 of Su Jianlin,
        "Variational autoencoders (1)", 2018; needs the ``normal`` prior) or ``full``
        (one-hot ``y`` into encoder and decoder); see
        :data:`pyrovae.conditional.CONDITIONINGS`.
    :param num_classes: number of classes ``C`` of the labels ``0..C-1``; needed
        when ``conditional`` is not ``none``. With ``full`` the default networks
        take ``x_dim + C`` and ``z_dim + C`` inputs.
    :param arch: architecture of the default encoder and decoder (see
        :data:`pyrovae.architectures.ARCHITECTURES`): ``mlp``, or ``conv`` for images.
    :param image_shape: ``(height, width)`` of a data row, needed by ``arch="conv"``
        (a dataset's ``image_shape``).
    """

    def __init__(
        self,
        x_dim: int,
        z_dim: Union[int, Sequence[int]] = 20,
        hidden: Sequence = (400,),
        activation: str = "relu",
        posterior: str = "normal",
        prior: Optional[str] = None,
        likelihood: str = "bernoulli",
        encoder: Optional[nn.Module] = None,
        decoder: Optional[nn.Module] = None,
        conditional: str = "none",
        num_classes: Optional[int] = None,
        arch: str = "mlp",
        image_shape: Optional[Tuple[int, int]] = None,
    ) -> None:
        super().__init__()
        sizes = latent_sizes(z_dim)
        hiddens = layer_hidden(hidden, len(sizes))
        check_positive(x_dim=x_dim, **{f"hidden[{i}]": h for i, h in enumerate(h for hs in hiddens for h in hs)})
        self.x_dim, self.z_dim, self.hidden = x_dim, compact_sizes(z_dim), compact_hidden(hidden)
        #: The top stochastic layer's size: what the prior, :meth:`embed` and the figures see.
        self.z_top = sizes[-1]
        prior_spec = self._resolve_names(posterior, prior, likelihood, activation, conditional, num_classes)
        self._build_modules(sizes, hiddens, prior_spec, arch, image_shape, encoder, decoder)

    def _resolve_names(self, posterior: str, prior: Optional[str], likelihood: str, activation: str,
                       conditional: str, num_classes: Optional[int]):
        """Resolve and check the registered names; returns the prior's spec (its module is built later)."""
        self.posterior_family = FAMILIES.get(posterior, "posterior family")
        prior = prior or self.posterior_family.default_prior
        prior_spec = PRIORS.get(prior, "prior family")
        self.names = {"posterior": posterior, "prior": prior, "likelihood": likelihood, "activation": activation,
                      "conditional": conditional}
        check_compatible(self.posterior_family, prior, prior_spec.support)
        self.conditioning = CONDITIONINGS.get(conditional)
        self.num_classes = _class_count(self.conditioning, num_classes, prior)
        #: The weight of the KL term (beta of Higgins et al. 2017); 1 gives the ELBO. See :meth:`kl_weighted`.
        self.kl_weight = 1.0
        self.likelihood_spec = LIKELIHOODS[likelihood]
        return prior_spec

    def _build_modules(self, sizes: Sequence[int], hiddens, prior_spec, arch: str,
                       image_shape: Optional[Tuple[int, int]], encoder: Optional[nn.Module],
                       decoder: Optional[nn.Module]) -> None:
        """Build the prior, posterior head, likelihood, networks and latent stack, in this order
        (the order of the parameters, which optimizer states and checkpoints follow)."""
        # A prior built from the encoder (the VampPrior) is made once the encoder exists, below.
        self.prior = (ClassMeanPrior(self.z_top, self.num_classes) if self.conditioning.class_prior
                      else None if prior_spec.uses_encoder else prior_spec.build(self.z_top))
        self.posterior = self.posterior_family.posterior_head(sizes[0])
        self.likelihood = self.likelihood_spec.build(self.x_dim)
        self.names["arch"], self.image_shape = arch, None if image_shape is None else tuple(image_shape)
        nets, net_sizes = ARCHITECTURES.get(arch, "architecture"), _network_sizes(self, sizes[0], hiddens[0])
        self.encoder = encoder if encoder is not None else nets.encoder(net_sizes)
        self.decoder = decoder if decoder is not None else nets.decoder(net_sizes)
        #: The latent sites and the networks between stochastic layers (none for one layer).
        self.layers = LatentStack(sizes, hiddens, self.posterior_family, self.names["activation"])
        if self.prior is None:
            self.prior = prior_spec.make(self.z_top, EncoderView(
                self.x_dim, self.encode_top, self.posterior, net_sizes.enc_out, bool(self.conditioning.encoder_label)))

    # -- the two Pyro programs -------------------------------------------------------------

    def model(self, x: torch.Tensor, y: Optional[torch.Tensor] = None,
              subsample: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Generative model ``p(z|y) p(x|z,y)`` over the rows ``x[subsample]``, scaled by ``N/M``.

        ``y`` (integer labels of all rows of ``x``) is used only by conditional VAEs.
        """
        pyro.module("decoder", self.decoder)
        pyro.module("likelihood", self.likelihood)
        pyro.module("prior", self.prior)
        with pyro.plate("data", size=x.shape[0], subsample=subsample):
            xb, yb = _rows(x, subsample), _rows(y, subsample)
            with self._weighted_kl():
                z = self.layers.model(self.prior(yb))  # z ~ p(z), or z_L ~ p(z_L) down to z_1
            return pyro.sample("x", self.decode(z, yb), obs=xb)

    def guide(self, x: torch.Tensor, y: Optional[torch.Tensor] = None,
              subsample: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Amortized recognition model ``q(z|x,y)`` over the same rows as :meth:`model`."""
        pyro.module("encoder", self.encoder)
        pyro.module("posterior", self.posterior)
        with pyro.plate("data", size=x.shape[0], subsample=subsample):
            xb, yb = _rows(x, subsample), _rows(y, subsample)
            # The same weight as the model's z site: TraceMeanField_ELBO scales its closed-form
            # KL by the guide site's scale alone.
            with self._weighted_kl():
                return self.layers.guide(self.encode(xb, yb))  # z ~ q(z|x), or z_1 ~ q(z_1|x) up to z_L

    # -- the KL weight (beta-VAE's beta) ----------------------------------------------------

    def _weighted_kl(self):
        # No handler at weight 1: the plain ELBO runs exactly the unweighted program.
        return contextlib.nullcontext() if self.kl_weight == 1.0 else KLWeight(self.kl_weight)

    @contextlib.contextmanager
    def kl_weighted(self, weight: float) -> Iterator["VAE"]:
        """Within the block the model and guide weight the KL by ``weight``: ``recon + weight * KL``."""
        old, self.kl_weight = self.kl_weight, float(weight)
        try:
            yield self
        finally:
            self.kl_weight = old

    def recording_key(self) -> float:
        """The Python constant of :meth:`model`/:meth:`guide` besides shapes: the KL weight.

        :mod:`pyrovae.fastpath` records the loss once per key, so a KL warm-up gets one
        recording per weight instead of reusing a graph with a stale weight.
        """
        return self.kl_weight

    # -- plain-torch views of the same networks ---------------------------------------------

    def encode(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> dist.TorchDistribution:
        """``q(z|x)`` (``q(z|x,y)`` for ``conditional="full"``) for a batch of rows, event shape ``(z_dim,)``."""
        h = self.likelihood_spec.encoder_input(x)
        if self.conditioning.encoder_label:
            h = with_label(h, self._onehot(y, h.dtype))
        return self.posterior(self.encoder(h))

    def decode(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> dist.TorchDistribution:
        """``p(x|z)`` (``p(x|z,y)`` for ``conditional="full"``) for a batch of latents, event shape ``(x_dim,)``."""
        if self.conditioning.decoder_label:
            z = with_label(z, self._onehot(y, z.dtype))
        return self.likelihood(self.decoder(z))

    def _onehot(self, y: Optional[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
        if y is None:
            raise PyroVAEError(f"this VAE is conditional ({self.conditioning.name!r}) and needs class labels y")
        return F.one_hot(y, self.num_classes).to(dtype)

    def check_labels(self, y, n_rows: int, what: str = "labels") -> Optional[torch.Tensor]:
        """Labels checked for this VAE: ``None`` for an unconditional VAE (labels are not used),
        else an int64 vector of ``n_rows`` classes in ``0..num_classes-1`` (missing labels raise)."""
        if not self.conditioning.needs_labels:
            return None
        if y is None:
            raise PyroVAEError(f"conditional VAE ({self.conditioning.name!r}) needs {what} (class labels y)")
        return validate_labels(y, n_rows, self.num_classes, what)

    def check_data(self, x: torch.Tensor, what: str = "data") -> None:
        """Raise :class:`PyroVAEError` unless ``x`` is ``(N, x_dim)`` inside the likelihood's support."""
        check_rows(x, x_dim=self.x_dim, likelihood=self.likelihood_spec, name=what)

    # -- what a trained VAE gives back ------------------------------------------------------

    @torch.no_grad()
    def sample(self, n: int, y: Union[int, torch.Tensor, None] = None) -> Generated:
        """``n`` draws of the generative model: ``z ~ p(z|y)``, then ``E[x|z,y]`` and ``x ~ p(x|z,y)``.

        :param n: how many rows to draw.
        :param y: for a conditional VAE, the class of every row (an int) or of each row (``n`` labels).
        :returns: a :class:`Generated` of detached tensors ``(z, mean, x)`` on the VAE's device.
            Draws come from torch's global stream: seed it (``pyro.set_rng_seed``) to repeat them.
        """
        check_positive(n=n)
        if isinstance(y, int):
            y = torch.full((n,), y, dtype=torch.int64)
        y = self._device_labels(y, n, "sample labels y")
        z = self.prior(y).expand((n,)).sample()
        px = self.decode_top(z, y, draw=True)
        return Generated(z, mean_image(px), px.sample())

    @torch.no_grad()
    def embed(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Each row's code: the posterior mean of ``q(z|x)``, or its median where the family has no mean.

        The point summary of :func:`pyrovae.summaries.posterior_point` that every figure and
        diagnostic uses (a Cauchy posterior: its location; a flow: the median of samples from the
        global stream). With several stochastic layers, the top layer's code, each layer's point
        summary passed up the guide (:meth:`encode_top`). ``x``: rows ``(N, x_dim)``; ``y``: their
        labels, needed by conditional VAEs. Returns a detached ``(N, z_top)`` tensor.
        """
        x = self._device_rows(x, "rows to embed")
        return posterior_point(self.encode_top(x, self._device_labels(y, len(x), "labels y")))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The decoder's mean ``E[x | z]`` at each row's code ``z`` (of ``z_1`` where there are several
        layers; :meth:`embed` for one): a detached ``(N, x_dim)`` tensor."""
        x = self._device_rows(x, "rows to reconstruct")
        y = self._device_labels(y, len(x), "labels y")
        return mean_image(self.decode(posterior_point(self.encode(x, y)), y))

    def encode_top(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> dist.TorchDistribution:
        """The top layer's ``q(z_L|z_{L-1})`` at the point codes of the layers below; :meth:`encode` for one layer."""
        return self.layers.ascend(self.encode(x, y))

    def decode_top(self, z: torch.Tensor, y: Optional[torch.Tensor] = None, draw: bool = False
                   ) -> dist.TorchDistribution:
        """``p(x|z_1)`` below a top-layer ``z``: :meth:`decode` for one layer, else through each
        ``p(z_l|z_{l+1})``'s point summary, or a draw of it where ``draw``."""
        return self.decode(self.layers.descend(z, draw), y)

    def _device_rows(self, x, what: str) -> torch.Tensor:
        param = next(self.parameters())
        x = torch.as_tensor(x).to(device=param.device, dtype=param.dtype)
        self.check_data(x, what)
        return x

    def _device_labels(self, y, n_rows: int, what: str) -> Optional[torch.Tensor]:
        y = self.check_labels(y, n_rows, what)
        return None if y is None else y.to(next(self.parameters()).device)

    def extra_repr(self) -> str:
        """The sizes and registry names, shown by ``print(vae)``."""
        n = self.names
        return (f"x_dim={self.x_dim}, z_dim={self.z_dim}, hidden={self.hidden}, posterior={n['posterior']!r}, "
                f"prior={n['prior']!r}, likelihood={n['likelihood']!r}, conditional={n['conditional']!r}, "
                f"arch={n['arch']!r}")


def _class_count(conditioning, num_classes: Optional[int], prior: str) -> Optional[int]:
    """The labels' class count a conditional VAE needs (``None`` for an unconditional one), checked."""
    if not conditioning.needs_labels:
        return None
    if num_classes is None:
        raise PyroVAEError(f"conditional {conditioning.name!r} needs num_classes (the labels' class count)")
    check_positive(num_classes=num_classes)
    if conditioning.class_prior and prior != "normal":
        raise PyroVAEError(f"conditional 'prior' is the prior N(mu_y, I) of Su 2018, eq. 8; "
                           f"it replaces the 'normal' prior, not {prior!r}")
    return num_classes


def _network_sizes(vae: VAE, z_dim: int, hidden: Sequence[int]) -> NetworkSizes:
    """What the architecture builds the encoder ``x -> q(z_1|x)`` and decoder ``z_1 -> p(x|z_1)`` from."""
    labels = vae.num_classes or 0  # a CVAE's networks also read the one-hot label
    return NetworkSizes(vae.x_dim, vae.x_dim + labels * vae.conditioning.encoder_label,
                        vae.posterior_family.head_size(z_dim), z_dim + labels * vae.conditioning.decoder_label,
                        vae.likelihood_spec.outputs_per_dim, tuple(hidden), vae.names["activation"],
                        vae.image_shape, vae.likelihood_spec.interleaved)


def _rows(t: Optional[torch.Tensor], subsample: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return t if t is None or subsample is None else t[subsample]


def vae_from_config(config, x_dim: int, image_shape: Optional[Tuple[int, int]] = None) -> VAE:
    """Build the :class:`VAE` a :class:`~pyrovae.config.RunConfig` describes, for data of size ``x_dim``
    (rows that are ``image_shape`` images, which ``arch="conv"`` needs)."""
    return VAE(x_dim, config.latent_dim, config.hidden, config.activation, config.posterior, config.prior,
               config.likelihood, conditional=config.conditional, num_classes=config.num_classes,
               arch=config.arch, image_shape=image_shape)

"""A hand-written PyTorch ELBO for pyrovae's default VAE: the independent check of the estimators."""

import math

import torch
import torch.nn.functional as F


def handwritten_elbo(vae, x: torch.Tensor, eps: torch.Tensor):
    """Per-point (SGVB-A, SGVB-B) for a normal-posterior, normal-prior, Bernoulli VAE at noise ``eps``.

    SGVB-B uses the closed-form KL of Kingma & Welling 2013, appendix B: 1/2 sum(mu^2 + sigma^2 - log sigma^2 - 1).
    """
    mu, log_var = vae.encoder(x).chunk(2, dim=-1)
    sigma = torch.exp(0.5 * log_var)
    z = mu + sigma * eps
    recon = -F.binary_cross_entropy_with_logits(vae.decoder(z), x.expand(z.shape[:-1] + x.shape[-1:]),
                                                reduction="none").sum(-1)
    kl = 0.5 * (mu**2 + sigma**2 - log_var - 1).sum(-1)
    log_prior = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(-1)
    log_q = (-0.5 * eps**2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)).sum(-1)
    return recon + log_prior - log_q, recon - kl

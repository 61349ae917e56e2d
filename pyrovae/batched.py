"""Runs of one architecture trained together as one batched model, so that a grid fills a device.

A small VAE leaves most of a GPU idle. :class:`BatchedRuns` stacks the encoder and decoder
weights of R runs (:func:`torch.func.stack_module_state`, torch's model-ensembling recipe) and
takes one step for all of them: the networks run under :func:`torch.func.vmap` over the stacked
weights, each run on its own minibatch, and the ELBO terms are the VAE's own distributions
applied to ``(R, M, ...)`` tensors. The loss is the sum of the runs' losses, so each run's
gradient is its own, and the optimizers pyrovae uses (Adam, Adagrad) update every element on
its own, so one optimizer over the stacked tensors is each run's optimizer.

Each run keeps its own random streams, which is what makes its numbers those it would have
alone. Its data order and binarization come from its own
:class:`~pyrovae.training.epochs.Epochs`, seeded as ``fit`` seeds it. Its reparameterization
noise ``eps`` (``z = mu + sigma * eps``, Kingma & Welling 2013, eq. 10) is drawn *outside*
``vmap``, from a generator of its own seeded with the run's seed, in the order and shape in which
Pyro draws it from torch's global stream when the run trains alone; ``vmap(randomness=
"different")`` would draw from one shared stream instead and reproduce no run.
"""

from __future__ import annotations

import copy
from typing import Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple

import torch
from torch.distributions import Normal, kl_divergence
from torch.func import functional_call, stack_module_state, vmap

from .errors import PyroVAEError
from .fastpath import OPTIMIZERS, make_optimizer
from .registry import Registry
from .training.budget import Budget
from .training.denormals import denormals_flushed
from .training.epochs import Epochs

#: ``elbo(log_px, q, z, prior)``: each row's ELBO estimate ``(R, M)`` from the likelihood term,
#: the posterior ``q(z|x)`` (a :class:`~torch.distributions.Normal` over ``(R, M, Nz)``), its
#: sample ``z`` and the prior, under the estimator's name.
BATCHED_ELBOS: Registry[Callable] = Registry("batched estimator")


def _mc(log_px, q, z, prior):
    # SGVB-A, Kingma & Welling 2013, eq. 6: log p(x|z) + log p(z) - log q(z|x) at one sample.
    return log_px + prior.log_prob(z).sum(-1) - q.log_prob(z).sum(-1)


def _analytic(log_px, q, z, prior):
    # SGVB-B, Kingma & Welling 2013, eq. 7: the KL term in closed form.
    return log_px - kl_divergence(q, prior.expand(q.batch_shape)).sum(-1)


def _stl(log_px, q, z, prior):
    # Roeder et al. 2017, eq. 8: SGVB-A's value, log q with its parameters stopped.
    stopped = Normal(q.loc.detach(), q.scale.detach())
    return log_px + prior.log_prob(z).sum(-1) - stopped.log_prob(z).sum(-1)


BATCHED_ELBOS.register("mc", _mc)
BATCHED_ELBOS.register("analytic", _analytic)
BATCHED_ELBOS.register("stl", _stl)


def check_batchable(vae) -> None:
    """Raise unless ``vae`` is what a batched run trains: Gaussian posterior and prior, Bernoulli
    pixels, no labels, weights in the encoder and decoder only."""
    names = vae.names
    wanted = {"posterior": "normal", "prior": "normal", "likelihood": "bernoulli"}
    odd = {k: names.get(k) for k, v in wanted.items() if names.get(k) != v}
    owners = {name.split(".")[0] for name, _ in vae.named_parameters()}
    if odd or owners - {"encoder", "decoder"} or vae.conditioning.needs_labels or not isinstance(vae.z_dim, int):
        what = odd or "other parameters, layers or labels"
        raise PyroVAEError(f"batched runs train the AEVB paper's model (normal posterior and prior, bernoulli "
                           f"likelihood, one latent layer, no labels); this VAE has {what}")


class BatchedRuns:
    """R runs of one VAE architecture, trained together; each gets the numbers it gets alone.

    :param vaes: one VAE per run, built and initialized as the run alone would be; after
        :meth:`train` they hold the trained weights (:meth:`write_back`).
    :param estimators: each run's estimator (names in :data:`BATCHED_ELBOS`); ``seeds``: each
        run's seed, which seeds its data order, binarization and noise as ``fit`` does.
    :param train: the training rows ``(N, D)`` on the runs' device; ``dynamic``: binarize them
        afresh every epoch.
    :param keep_denormals: keep subnormal floats while training on a CPU; by default they are
        flushed to zero, as :func:`~pyrovae.training.fit` flushes them for a run alone.
    """

    def __init__(self, vaes: Sequence, estimators: Sequence[str], seeds: Sequence[int], train: torch.Tensor, *,
                 batch_size: int = 100, optimizer: str = "adam", lr: float = 1e-3, dynamic: bool = False,
                 keep_denormals: bool = False) -> None:
        if not len(vaes) == len(estimators) == len(seeds) or not vaes:
            raise PyroVAEError("batched runs need one estimator and one seed per VAE, and at least one VAE")
        for vae in vaes:
            check_batchable(vae)
        self.vaes, self.base, self.batch_size = list(vaes), vaes[0], batch_size
        device, self.rows, self.keep_denormals = train.device, train, keep_denormals
        # Runs grouped by estimator: each estimator is evaluated once over all runs and kept where it is theirs.
        self.masks = {name: torch.tensor([e == name for e in estimators], device=device)
                      for name in dict.fromkeys(BATCHED_ELBOS.check(e) for e in estimators)}
        self.params = {net: stack_module_state([getattr(v, net) for v in vaes])[0] for net in ("encoder", "decoder")}
        self.skeleton = {net: copy.deepcopy(getattr(self.base, net)).to("meta") for net in self.params}
        self.epochs = [Epochs(train, batch_size, dynamic, seed, device, {}) for seed in seeds]
        self.noise = [torch.Generator(device).manual_seed(seed) for seed in seeds]
        leaves = [p for group in self.params.values() for p in group.values()]
        self.optim = make_optimizer(OPTIMIZERS[optimizer], leaves, lr, device)

    def _net(self, net: str, inputs: torch.Tensor) -> torch.Tensor:
        """One network of every run on its own inputs ``(R, M, in)``."""
        return vmap(lambda p, x: functional_call(self.skeleton[net], p, (x,)))(self.params[net], inputs)

    def losses(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Each run's minibatch loss ``-(N/M) sum_i ELBO_i`` (Kingma & Welling 2013, eq. 8), ``(R,)``."""
        vae = self.base
        q = vae.posterior(self._net("encoder", vae.likelihood_spec.encoder_input(x))).base_dist
        z = q.loc + eps * q.scale  # Normal.rsample's formula, with each run's own eps
        log_px = vae.likelihood(self._net("decoder", z)).log_prob(x)
        prior = vae.prior().base_dist
        rows = torch.zeros_like(log_px)
        for name, mask in self.masks.items():  # where() sends no gradient to the estimators a run does not use
            rows = torch.where(mask[:, None], BATCHED_ELBOS[name](log_px, q, z, prior), rows)
        return -rows.sum(-1) * (len(self.rows) / x.shape[1])

    def step(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """One optimizer step of every run; returns the detached losses ``(R,)``."""
        self.optim.zero_grad(set_to_none=True)
        losses = self.losses(x, eps)
        losses.sum().backward()
        self.optim.step()
        return losses.detach()

    def train(self, budget: Budget, points: FrozenSet[int] = frozenset(),
              on_point: Optional[Callable[[int], None]] = None) -> List[torch.Tensor]:
        """Train every run for ``budget``; returns each epoch's losses ``(steps, R)``.

        :param points: global steps after which the VAEs get the current weights and
            ``on_point(step)`` is called (the learning curve's points, say).
        """
        out, steps = [], budget.steps_per_epoch
        with denormals_flushed(self.keep_denormals, self.rows.device):
            for epoch in range(-(-budget.total_steps // steps)):
                drawn = [e.draw() for e in self.epochs]  # each run's epoch, from its own data stream
                losses = []
                for i in range(budget.steps_in(epoch)):
                    losses.append(self.step(*self._minibatch(drawn, i)))
                    if on_point is not None and epoch * steps + i + 1 in points:
                        self.write_back()
                        on_point(epoch * steps + i + 1)
                out.append(torch.stack(losses))
        self.write_back()
        return out

    def _minibatch(self, drawn, i: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Every run's rows of step ``i`` and its noise, drawn from its own generator, ``(R, M, ...)``."""
        x = torch.stack([rows[batches[i]] for rows, batches, _ in drawn])
        eps = torch.stack([torch.randn(x.shape[1], self.base.z_dim, generator=g, dtype=x.dtype, device=x.device)
                           for g in self.noise])
        return x, eps

    def write_back(self) -> None:
        """Copy each run's trained weights into its VAE."""
        with torch.no_grad():
            for r, vae in enumerate(self.vaes):
                for net, params in self.params.items():
                    getattr(vae, net).load_state_dict({k: p[r] for k, p in params.items()})

    def state(self) -> Dict[str, Dict[str, torch.Tensor]]:
        """The stacked weights ``{"encoder": {name: (R, ...)}, "decoder": ...}``."""
        return self.params

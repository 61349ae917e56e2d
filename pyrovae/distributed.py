"""Data-parallel training on PyTorch's own engine: ``torchrun`` + ``torch.distributed``.

Every rank runs the same program on the same data with the same seeds, so all
ranks draw the same per-epoch reshuffle and binarization. Each global
minibatch of ``--batch-size`` rows is split into one contiguous shard per rank
(:meth:`Ranks.shard`); a rank evaluates the ELBO on its shard only, and the
gradients are summed over ranks before the identical optimizer step on every
rank. Three details make N ranks follow the single-process run step for step
(up to the order of floating-point sums):

* **The minibatch scale.** Pyro's data plate scales a shard of ``m`` rows by
  ``N/m``; :class:`SharedNoise` rescales it to the global ``N/M`` (Kingma &
  Welling 2013, eq. 8), so the summed losses are the single-process loss.
* **The noise.** A single process draws ``z ~ q(z|x)`` for all ``M`` rows in
  one call. :class:`SharedNoise` gathers the posterior's parameters of every
  shard, draws from the gathered distribution exactly as the single process
  does, and keeps the rank's own rows: the same ``z``, and the gradient
  reaches only the rank's own parameters.
* **The reduction.** Gradients are summed with one all-reduce of one flat
  buffer (:meth:`Ranks.sum_gradients`): every rank receives the same bits and
  takes the same optimizer step.

Pyro's ``model``/``guide`` call the encoder and decoder directly rather than
through one ``forward``, so a ``DistributedDataParallel`` wrapper would see
no forward pass; summing gradients explicitly is the equivalent DDP performs.
"""

from __future__ import annotations

import datetime
import os
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

import torch
import torch.distributed as dist
from pyro.poutine.messenger import Messenger

from .errors import DistributedError, PyroVAEError
from .families.flow import ContextFlow
from .fastpath import EagerStep

T = TypeVar("T")

#: Seconds a collective waits for the other ranks before the run stops (``PYROVAE_DIST_TIMEOUT``).
DEFAULT_TIMEOUT = 300.0


class Ranks:
    """This process's place in a data-parallel run, and the collectives pyrovae uses.

    Every collective goes through one of these methods, so a lost rank always
    surfaces as one :class:`DistributedError` that names it.
    """

    def __init__(self, rank: int, world_size: int) -> None:
        self.rank, self.world_size = rank, world_size

    @property
    def main(self) -> bool:
        """Rank 0: the only rank that writes the run folder."""
        return self.rank == 0

    # -- shards ----------------------------------------------------------------------------

    def sizes(self, n: int) -> List[int]:
        """Rows of every rank's shard of ``n`` rows (as :func:`torch.tensor_split` cuts them)."""
        q, r = divmod(n, self.world_size)
        return [q + (k < r) for k in range(self.world_size)]

    def rows(self, n: int) -> slice:
        """This rank's contiguous rows of ``n``."""
        sizes = self.sizes(n)
        start = sum(sizes[: self.rank])
        return slice(start, start + sizes[self.rank])

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's part of the global minibatch ``idx``."""
        return idx[self.rows(len(idx))]

    # -- collectives -----------------------------------------------------------------------

    def _guard(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except RuntimeError as e:  # gloo/NCCL: a closed connection, a reset, a timeout
            raise DistributedError(
                f"rank {self.rank} of {self.world_size} lost contact with the other ranks during {what} "
                f"({_first_sentence(e)}); the run stopped, and the last checkpoint in the run folder is kept "
                "(resume with --resume)") from None

    def sum_(self, tensor: torch.Tensor, what: str = "a sum") -> torch.Tensor:
        """Sum ``tensor`` over ranks, in place; returns it."""
        self._guard(what, lambda: dist.all_reduce(tensor))
        return tensor

    def sum(self, value: float, what: str = "a sum") -> float:
        """Sum a Python number over ranks (in float64)."""
        return float(self.sum_(torch.tensor([value], dtype=torch.float64, device=_collective_device()), what))

    def sum_gradients(self, params: Sequence[torch.Tensor]) -> None:
        """Sum the gradients of ``params`` over ranks with one all-reduce of one flat buffer.

        A parameter without a gradient contributes zeros, so every rank sends the same layout.
        """
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        self.sum_(flat, "the gradient all-reduce")
        for p, g in zip(params, flat.split([g.numel() for g in grads])):
            p.grad = g.view_as(p)

    def gather(self, local: torch.Tensor, dim: int, sizes: Sequence[int], what: str) -> torch.Tensor:
        """Concatenate every rank's ``local`` along ``dim`` (shards of ``sizes`` rows, possibly uneven).

        The result holds the rank's own tensor itself, so gradients flow to it; the other
        ranks' parts are constants, as in DDP.
        """
        top = max(sizes)
        pad = list(local.shape)
        pad[dim] = top - local.shape[dim]
        padded = torch.cat([local.detach(), local.new_zeros(pad)], dim) if pad[dim] else local.detach().contiguous()
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        self._guard(what, lambda: dist.all_gather(parts, padded))
        parts = [p.narrow(dim, 0, s) for p, s in zip(parts, sizes)]
        parts[self.rank] = local
        return torch.cat(parts, dim)

    def from_main(self, fn: Callable[[], T], what: str) -> T:
        """Run ``fn`` on rank 0 only and hand its result (or its :class:`PyroVAEError`) to every rank.

        For work that touches the run folder: checks, loading a checkpoint. Every rank
        raises the same error, so none is left waiting in a collective.
        """
        payload: List[Any] = [None]
        if self.main:
            try:
                payload[0] = ("ok", fn())
            except PyroVAEError as e:
                payload[0] = ("error", str(e))
        self._guard(what, lambda: dist.broadcast_object_list(payload, src=0))
        status, value = payload[0]
        if status == "error":
            raise PyroVAEError(value)
        return value

    def copy_from_main(self, tensors) -> None:
        """Overwrite ``tensors`` (e.g. a module's parameters and buffers) with rank 0's, in place."""
        for t in tensors:
            self._guard("copying rank 0's weights", lambda: dist.broadcast(t.data, src=0))


def shard_epoch(ranks: Ranks, x: torch.Tensor, batches: Sequence[torch.Tensor], labels: Dict[str, torch.Tensor],
                device: torch.device) -> Tuple[torch.Tensor, Tuple[torch.Tensor, ...], Dict[str, torch.Tensor]]:
    """A data-parallel rank's part of an epoch: its shard of every minibatch, moved to its device.

    ``x`` (every row, on the host) and ``batches`` are the single process's epoch, drawn
    identically on every rank; the rank copies only its ``~N/ranks`` rows (and their
    ``labels``) to ``device``. Each returned index tensor keeps the global minibatch layout
    (``len`` is the global batch, as the step's ``N/M`` needs): the rank's own part points at
    its rows on the device, the other ranks' parts are ``-1`` and never read
    (:meth:`DistributedStep.loss`).
    """
    parts = [ranks.shard(b) for b in batches]
    rows = torch.cat(parts).to(x.device)
    local, start = [], 0
    for batch, part in zip(batches, parts):
        idx = torch.full_like(batch, -1)
        idx[ranks.rows(len(batch))] = torch.arange(start, start + len(part), device=batch.device)
        local.append(idx)
        start += len(part)
    return x[rows].to(device), tuple(local), {k: y[rows].to(device) for k, y in labels.items()}


def _first_sentence(error: Exception) -> str:
    """The gist of a backend error: its first sentence, without the C++ source location."""
    text = re.sub(r"\[[^\]]*\.(cc|cpp|hpp):\d+\]\s*", "", " ".join(str(error).split()))
    return re.split(r"(?<=[a-z])\. ", text, maxsplit=1)[0][:160]


def _collective_device() -> torch.device:
    """Where small collective buffers live: the current CUDA device under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def current() -> Optional[Ranks]:
    """The data-parallel run this process belongs to: None unless a process group of 2+ ranks is up."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return Ranks(dist.get_rank(), dist.get_world_size())


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (or another launcher) as one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "auto") -> Optional[Ranks]:
    """Join the process group that ``torchrun`` describes in the environment; None when not launched.

    NCCL when the run is on CUDA (each rank on ``cuda:LOCAL_RANK``), gloo on CPU.
    Collectives give up after ``PYROVAE_DIST_TIMEOUT`` seconds (default 300),
    so a rank that hangs stops the run instead of freezing it.
    """
    if not launched():
        return None
    if not dist.is_available():
        raise PyroVAEError("this torch build has no torch.distributed; run without torchrun")
    if dist.is_initialized():
        return current()
    cuda = device != "cpu" and not device.startswith("cpu") and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    try:
        timeout = float(os.environ.get("PYROVAE_DIST_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        raise PyroVAEError(f"PYROVAE_DIST_TIMEOUT must be a number of seconds, not "
                           f"{os.environ['PYROVAE_DIST_TIMEOUT']!r}") from None
    if not timeout > 0:
        raise PyroVAEError(f"PYROVAE_DIST_TIMEOUT must be positive, not {timeout}")
    dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout))
    _JOINED.append(True)
    return current()


_JOINED: List[bool] = []  # whether init_from_env made the process group (and shutdown should end it)


def shutdown(clean: bool = True) -> None:
    """Leave the process group that :func:`init_from_env` joined (one the caller made is left alone).

    After a clean run every rank first waits for the others: a rank that tore down its gloo
    connections while a peer was still using them could make that peer abort. After a failure
    (``clean=False``) it leaves at once, since a lost peer would never arrive.
    """
    if _JOINED and dist.is_initialized():
        if clean:
            try:
                dist.barrier()
            except RuntimeError:
                pass  # a peer is gone already; leaving is all that is left to do
        dist.destroy_process_group()
    _JOINED.clear()


class SharedNoise(Messenger):
    """Inside a rank's step, make its shard of the data plate behave as rows of the global minibatch.

    * Every site in the plate is rescaled from ``N/m`` (the shard's ``m`` rows) to ``N/M``.
    * Every latent site in the plate is drawn from the posterior gathered over all shards, with
      the same random numbers the single process uses, and the rank keeps its own rows.
    * A site outside the plate (a global latent) counts ``1/world_size`` on each rank, once in all.

    Use it around the whole loss (outermost), so it sees each site after every plate, the
    particle plate included, has shaped it.

    :param ranks: this process's :class:`Ranks`.
    :param global_size: rows ``M`` of the global minibatch.
    :param plate: name of the model's data plate.
    :param rescale: rescale the sites as above (training); an evaluation, which sums
        unscaled terms over its rows, only shares the noise.
    :param scale: the factor for sites in the plate; by default ``m/M``, which turns the
        plate's ``N/m`` into ``N/M`` (pass another when the plate's size is not ``N``).
    """

    def __init__(self, ranks: Ranks, global_size: int, plate: str = "data", rescale: bool = True,
                 scale: Optional[float] = None) -> None:
        super().__init__()
        self.ranks, self.plate, self.rescale = ranks, plate, rescale
        self.sizes = ranks.sizes(global_size)
        self.scale = self.sizes[ranks.rank] / global_size if scale is None else scale

    def _process_message(self, msg: Dict[str, Any]) -> None:
        if msg["type"] != "sample":
            return
        frame = next((f for f in msg["cond_indep_stack"] if f.name == self.plate), None)
        if self.rescale:
            msg["scale"] = msg["scale"] * (self.scale if frame is not None else 1 / self.ranks.world_size)
        if frame is None:
            return
        if msg["is_observed"] or msg["value"] is not None or msg["done"]:
            return
        fn = gathered(msg["fn"], frame.dim, self.ranks, self.sizes, msg["name"])
        value = fn.rsample() if fn.has_rsample else fn.sample()
        dim = len(fn.batch_shape) + frame.dim
        rows = self.ranks.rows(sum(self.sizes))
        msg["value"] = value.narrow(dim, rows.start, rows.stop - rows.start)


def _parameters(fn) -> Dict[str, torch.Tensor]:
    """The tensors ``type(fn)`` was built from: its ``arg_constraints`` that it stores or exposes.

    A lazily computed alternative parametrization (e.g. a MultivariateNormal's
    ``covariance_matrix`` next to its ``scale_tril``) is skipped unless it is the stored one.
    """
    cls = type(fn)
    names = next((names for base, names in _REBUILT_FROM.items() if isinstance(fn, base)), None)
    if names is None:
        names = [n for n in fn.arg_constraints
                 if n in vars(fn) or isinstance(getattr(cls, n, None), property)]
    return {n: getattr(fn, n) for n in names}


#: Families with several parametrizations, all cached once used: the one to rebuild them from.
_REBUILT_FROM: Dict[type, tuple] = {torch.distributions.MultivariateNormal: ("loc", "scale_tril")}


def gathered(fn, dim: int, ranks: Ranks, sizes: Sequence[int], site: str):
    """``fn`` (a shard's distribution, plate at batch dim ``dim``) widened to every shard's rows."""
    if isinstance(fn, torch.distributions.Independent):
        base = gathered(fn.base_dist, dim - fn.reinterpreted_batch_ndims, ranks, sizes, site)
        return type(fn)(base, fn.reinterpreted_batch_ndims)
    if isinstance(fn, ContextFlow):  # the amortized IAF: its per-row context is gathered like the base
        context = ranks.gather(fn.context, len(fn.batch_shape) + dim, sizes, f"drawing site {site!r}")
        return ContextFlow(gathered(fn.base_dist, dim, ranks, sizes, site), fn.layers, context)
    if isinstance(fn, torch.distributions.TransformedDistribution) and not fn.arg_constraints:
        # A flow (e.g. IAF) over a per-row base: its transforms are global, shared by every row.
        if len(fn.base_dist.batch_shape) == len(fn.batch_shape):
            return type(fn)(gathered(fn.base_dist, dim, ranks, sizes, site), fn.transforms)
    batch = fn.batch_shape
    pos = len(batch) + dim
    params = _parameters(fn)
    if not params or any(tuple(p.shape[: len(batch)]) != tuple(batch) for p in params.values()):
        raise PyroVAEError(f"site {site!r}: {type(fn).__name__} cannot be drawn data-parallel (its parameters "
                           "are not per-row tensors); train it in one process")
    wide = {n: ranks.gather(p.expand(batch + p.shape[len(batch):]), pos, sizes, f"drawing site {site!r}")
            for n, p in params.items()}
    try:
        return type(fn)(**wide, validate_args=False)
    except (TypeError, ValueError) as e:
        raise PyroVAEError(f"site {site!r}: {type(fn).__name__} cannot be rebuilt from its parameters "
                           f"{sorted(params)} ({e}); train it in one process") from None


class DistributedStep(EagerStep):
    """One data-parallel SVI step: the loss on this rank's shard, gradients summed over ranks, the update.

    Runs eagerly: a recording (``jit``) or a CUDA graph would freeze the collectives.
    """

    name = "distributed"

    def __init__(self, vae, est, optim: torch.optim.Optimizer, ranks: Ranks,
                 clip_grad_norm: Optional[float] = None, data_size: Optional[int] = None) -> None:
        super().__init__(vae, est, optim, clip_grad_norm)
        self.ranks, self.params, self.data_size = ranks, list(vae.parameters()), data_size
        self.plate = getattr(vae, "data_plate", "data")

    def loss(self, x: torch.Tensor, idx: torch.Tensor, **data: torch.Tensor) -> torch.Tensor:
        """This rank's part of the global minibatch loss (the parts sum to the single-process loss).

        ``idx`` is the global minibatch (``M`` rows); the rank reads only its shard of it. ``x``
        may be every training row or only the rank's rows of the epoch; the data plate's scale
        becomes ``N/M`` either way, with ``N`` the training set's size (``data_size``).
        """
        own = self.ranks.shard(idx)
        n = self.data_size or len(x)
        with SharedNoise(self.ranks, len(idx), self.plate, scale=n * len(own) / (len(idx) * len(x))):
            return super().loss(x, own, **data)

    def _update(self, loss: torch.Tensor) -> None:
        loss.backward()
        self.ranks.sum_gradients(self.params)
        self._apply_grads()


def step_for(name: str, vae, est, optim: torch.optim.Optimizer, ranks: Ranks,
             clip_grad_norm: Optional[float] = None, data_size: Optional[int] = None) -> DistributedStep:
    """The data-parallel step for ``step=name``: ``auto`` and ``eager`` are the only ways it runs."""
    if name not in ("auto", "eager"):
        raise PyroVAEError(f"step {name!r} does not run data-parallel (it would freeze the gradient "
                           "all-reduce); use step 'auto' or 'eager' under torchrun")
    return DistributedStep(vae, est, optim, ranks, clip_grad_norm, data_size)

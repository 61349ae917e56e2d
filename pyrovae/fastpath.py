"""The training step, four ways: eager, traced (TorchScript), captured (CUDA graph) and compiled (Inductor).

Every way computes the same step as plain Pyro (``SVI`` with a ``PyroOptim``):
the estimator's loss on the minibatch ``x[idx]``, its gradient, one Adam (or
Adagrad) update. What they remove is Pyro's per-step tax:

* **host syncs**: pyrovae's estimators assemble the loss without ``.item()``
  (:mod:`pyrovae.estimators.base`), and the step returns the loss as a device
  tensor;
* **one optimizer per parameter tensor**: one torch optimizer, fused where
  torch has a fused kernel;
* **re-running the model's Python every step** (tracing the guide, replaying the
  model, building distributions): :class:`TracedStep` records the loss once per
  minibatch shape with :func:`torch.jit.trace` and then runs the recorded graph;
  :class:`GraphStep` captures forward, backward and optimizer as one CUDA graph
  and replays it; :class:`~pyrovae.compiled.CompiledStep` (``step="compiled"``)
  captures loss and gradient as one aten graph and compiles it with Inductor.

The recording runs the user's ordinary Pyro ``model``/``guide``; nothing about
them changes. A recorded graph is valid while the model's Python takes the same
path for the same shapes, which holds for a VAE; pass ``step="eager"`` (CLI
``--step eager``) for models that branch on data values.
"""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
import warnings
from typing import Callable, Dict, Hashable, Optional, Sequence, Tuple

import pyro
import pyro.poutine as poutine
import torch

from .errors import PyroVAEError, PyroVAEWarning
from .optim import fused_optimizer
from .registry import Registry

#: Step implementations by name; ``"auto"`` is resolved by :func:`default_step`.
STEPS: Registry[type] = Registry("step")

#: Optimizers by name: torch's own classes, built by :func:`make_optimizer`.
OPTIMIZERS: Registry[type] = Registry("optimizer")
OPTIMIZERS.register("adam", torch.optim.Adam)
OPTIMIZERS.register("adagrad", torch.optim.Adagrad)  # the paper's optimizer (Kingma & Welling 2013, section 5)


class EagerFallbackWarning(PyroVAEWarning, RuntimeWarning):
    """``step="auto"`` could not record the model and trains it eagerly: the same numbers, only slower."""


def make_optimizer(cls: type, params: Sequence[torch.Tensor], lr: float, device: torch.device,
                   capturable: bool = False) -> torch.optim.Optimizer:
    """One torch optimizer over all ``params``: the fused kernel where ``cls`` has one for ``device``.

    A fused optimizer updates every parameter tensor in one kernel launch per
    dtype/device group instead of a dozen small ones per tensor (PyroOptim keeps
    one optimizer per tensor). Where :mod:`pyrovae.optim` has a stand-in that
    calls the same kernel (Adam, Adagrad), that is used: bit-identical updates
    and state dicts, without the ~2 s import of TorchDynamo that ``torch.optim``
    makes on its first step. ``capturable`` keeps the step counter on the
    device, which a CUDA graph needs; it is torch's own class then.
    """
    if not capturable:
        fused = fused_optimizer(cls, params, device, lr=lr)  # torch's kernel without torch.optim's Dynamo import
        if fused is not None:
            return fused
    accepted = inspect.signature(cls).parameters
    kwargs = {"lr": lr}
    if "fused" in accepted and device.type in ("cpu", "cuda"):
        kwargs["fused"] = True
    if capturable and "capturable" in accepted:
        kwargs["capturable"] = True
    try:
        return cls(params, **kwargs)
    except (RuntimeError, ValueError):  # e.g. no fused kernel for this dtype: the plain loop
        return cls(params, lr=lr)


class EagerStep:
    """One SVI step in eager mode: ``differentiable_loss``, ``backward``, one optimizer step.

    :param vae: the model (any ``nn.Module`` with Pyro ``model``/``guide`` taking ``(x, subsample=idx)``).
    :param est: a Pyro ELBO; pyrovae's estimators assemble the loss without host syncs.
    :param optim: one torch optimizer over ``vae.parameters()``.
    :param clip_grad_norm: clip the norm of all gradients together to this before each update
        (on the device: no host sync).
    """

    name = "eager"  # the step's name in STEPS and in messages

    def __init__(self, vae, est, optim: torch.optim.Optimizer, clip_grad_norm: Optional[float] = None) -> None:
        self.vae, self.est, self.optim, self.clip_grad_norm = vae, est, optim, clip_grad_norm

    @property
    def runs_as(self) -> str:
        """The step that actually runs: this one's name, or ``eager`` where it fell back to eager execution."""
        return "eager" if getattr(self, "_eager", False) else self.name

    def loss(self, x: torch.Tensor, idx: torch.Tensor, **data: torch.Tensor) -> torch.Tensor:
        """The estimator's loss on the rows ``x[idx]`` (and ``data``, e.g. labels ``y``), scaled by ``N/M``."""
        return self.est.differentiable_loss(self.vae.model, self.vae.guide, x, subsample=idx, **data)

    def __call__(self, x: torch.Tensor, idx: torch.Tensor, **data: torch.Tensor) -> torch.Tensor:
        """Take one step; return the loss as a detached device tensor (no host sync)."""
        self.optim.zero_grad(set_to_none=True)
        loss = self.loss(x, idx, **data)
        self._update(loss)
        return loss.detach()

    def _update(self, loss: torch.Tensor) -> None:
        loss.backward()
        self._apply_grads()

    def _apply_grads(self) -> None:
        """The optimizer step on the gradients in ``.grad``, clipped first if asked."""
        if self.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.vae.parameters(), self.clip_grad_norm)
        self.optim.step()


STEPS.register("eager", EagerStep)


def traceable(est) -> bool:
    """Whether the estimator's gradient is all in its loss graph (no autograd hooks), as a recording needs."""
    return getattr(est, "traceable", True)


def recording_key(module) -> Hashable:
    """Python values a recording depends on besides shapes: ``module.recording_key()`` if defined.

    A model whose Python constants change during training (the VAE's KL weight under a warm-up)
    declares them there, and gets one recording per value.
    """
    fn = getattr(module, "recording_key", None)
    return fn() if fn is not None else None


def _param_sites(fn: Callable[[], torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The unconstrained tensors of every ``pyro.param`` that ``fn`` touches, by name."""
    with poutine.block(), poutine.trace(param_only=True) as tr:
        fn()
    return {name: pyro.param(name).unconstrained() for name in tr.trace.nodes}


class TracedStep(EagerStep):
    """The step with the loss recorded by :func:`torch.jit.trace`, once per minibatch shape.

    Recording runs the model and guide once (on a forked RNG stream, so the
    training stream is the same as in eager mode) with the parameters as graph
    inputs; later steps run the recorded graph, whose random draws come from
    the global generator exactly as the eager draws do. ``N/M`` and other
    Python numbers are constants of a recording, hence one per shape. The
    graph runs unoptimized, op for op as recorded, so the gradient flows
    through ordinary autograd and the numbers are the eager ones bit for bit.

    Each recording is checked before use: on another minibatch of the same
    shape and the same random stream, its loss and gradients must equal the
    eager ones (a recording that froze a data-dependent value fails this).
    A model that cannot be recorded raises :class:`PyroVAEError` with
    ``strict=True`` (``step="jit"``) and runs eagerly, with a warning, under
    ``step="auto"``.
    """

    name = "jit"  # the step's name in messages
    keeps_hooks = False  # whether a recording keeps the autograd hooks an estimator registers (dreg's)

    def __init__(self, vae, est, optim: torch.optim.Optimizer, clip_grad_norm: Optional[float] = None,
                 strict: bool = True) -> None:
        super().__init__(vae, est, optim, clip_grad_norm)
        self.strict = strict
        self._compiled: Dict[Hashable, torch.jit.ScriptFunction] = {}
        self._params: Tuple[torch.Tensor, ...] = tuple(vae.parameters())
        self._eager = not (self.keeps_hooks or traceable(est)) and self._refuse(
            f"estimator {type(est).__name__}'s gradient hooks are not part of a recording")

    def loss(self, x: torch.Tensor, idx: torch.Tensor, **data: torch.Tensor) -> torch.Tensor:
        """The recorded loss for these shapes (recorded now if they are new)."""
        recording, args = self._recording(x, idx, data)
        if recording is None:
            return super().loss(x, idx, **data)
        # Run the recording as recorded: TorchScript's optimizing executor would re-plan it after a
        # few profiling runs, so a resumed run (fewer runs so far) would round differently.
        with torch.jit.optimized_execution(False):
            return recording(*self._params, *args)

    def _recording(self, x: torch.Tensor, idx: torch.Tensor, data: Dict[str, torch.Tensor]) -> tuple:
        """``(recording, args)``: the recording for these shapes (made now if they are new), or
        None when the step runs eagerly; ``args`` are its inputs after the parameters."""
        names = tuple(sorted(data))
        args = (x, idx, *(data[k] for k in names))
        key = (names, tuple((a.shape, a.dtype) for a in args), x.device, recording_key(self.vae))
        if not self._eager and key not in self._compiled:
            self._compiled[key] = self._record(args, names)
        return (None if self._eager else self._compiled[key]), args

    def _refuse(self, reason: str) -> bool:
        message = f"step '{self.name}' cannot record this model: {reason}; use step='eager'"
        if self.strict:
            raise PyroVAEError(message)
        warnings.warn(message.replace("; use step='eager'", "; running it eagerly"), EagerFallbackWarning,
                      stacklevel=2)
        return True

    def _eager_loss(self, args: tuple, names: tuple) -> torch.Tensor:
        return super().loss(args[0], args[1], **dict(zip(names, args[2:])))

    def _record(self, args: tuple, names: tuple) -> Optional[torch.jit.ScriptFunction]:
        x, idx = args[:2]
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            stray = self._stray_params(args, names)
            if stray:
                self._eager = self._refuse(f"it uses pyro.param {', '.join(stray)} outside the module, "
                                           "which a recording would freeze as a constant")
                return None
            try:
                recording = self._trace(args, names)
                other = (x, torch.remainder(idx + 1, len(x)), *args[2:])  # the same shapes, other rows
                mismatch = self._mismatch(recording, other, names)
            except Exception as err:  # noqa: BLE001 - e.g. torch.distributions code that is not traceable
                mismatch = f"{type(err).__name__}: {err}".splitlines()[0]
        if mismatch:
            self._eager = self._refuse(mismatch)
            return None
        return recording

    def _stray_params(self, args: tuple, names: tuple) -> list:
        own = {id(p) for p in self._params}
        used = _param_sites(lambda: self._eager_loss(args, names))
        return [name for name, p in used.items() if p.requires_grad and id(p) not in own]

    def _trace(self, args: tuple, names: tuple) -> torch.jit.ScriptFunction:
        n = len(self._params)  # every module parameter is a graph input
        with pyro.validation_enabled(False), warnings.catch_warnings():
            # Python numbers taken from tensors (N/M) become constants: _mismatch checks them.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # torch >= 2.9 marks jit.trace deprecated in favour of torch.compile, but dynamo breaks
            # the graph at every Pyro messenger and recompiles per step (docs/performance.md).
            warnings.filterwarnings("ignore", "`torch.jit.trace` is deprecated", FutureWarning)
            recording = torch.jit.trace(lambda *a: self._eager_loss(a[n:], names), (*self._params, *args),
                                        check_trace=False)
        _simplify(recording.graph)
        return recording

    def _mismatch(self, recording, args: tuple, names: tuple) -> Optional[str]:
        """``None`` if the recording gives the eager loss and gradients on ``args``, else why not."""
        results = []
        for run in (lambda: self._eager_loss(args, names), lambda: recording(*self._params, *args)):
            with torch.random.fork_rng(devices=[args[0].device] if args[0].device.type == "cuda" else []):
                loss = run()
                grads = torch.autograd.grad(loss, self._params, allow_unused=True)
            results.append([loss.detach()] + [g for g in grads if g is not None])
        (eager, recorded) = results
        same = len(eager) == len(recorded) and all(rounds_alike(a, b) for a, b in zip(eager, recorded))
        return None if same else "the recording's loss or gradients differ from eager execution"


def rounding_scale(dtype: torch.dtype) -> float:
    """The largest difference, relative to a tensor's largest entry, that :func:`rounds_alike`
    puts down to rounding: 1e-6, or 100 units in the last place where ``dtype`` is coarser.

    A compiled graph may fuse and reorder sums (Inductor does), so its float32 gradients
    differ from eager ones by a few float32 ulps of the largest entry (2e-5 on gradients of
    30 for the IWAE bound); a recording that froze a value differs at the size of the value.
    """
    return max(1e-6, 100 * torch.finfo(dtype).eps)


def rounds_alike(eager: torch.Tensor, recorded: torch.Tensor) -> bool:
    """Whether ``recorded`` equals ``eager`` up to rounding: ``rtol`` 1e-5, and ``atol``
    :func:`rounding_scale` times the largest entry of ``eager`` (at least 1)."""
    size = float(eager.abs().max().clamp(min=1)) if eager.numel() else 1.0
    return torch.allclose(eager, recorded, rtol=1e-5, atol=rounding_scale(eager.dtype) * size)


def _simplify(graph: torch._C.Graph) -> None:
    """Remove what a recording repeats without changing a single result, before its first run.

    The model and the guide each gather the minibatch ``x[idx]``, and every distribution
    re-reads shapes that are constants of the recording. Constant propagation folds the
    shape arithmetic, :func:`_merge_repeated_data_ops` keeps one of each repeated gather or
    shape op, and dead-code elimination drops what is left over.

    torch's general CSE pass is not used: merging two identical ops whose outputs carry a
    gradient makes backward add the two incoming gradients before the op's derivative rather
    than after, which changes the last bits (it did for ``lognormal`` and ``lowrank-normal``).
    The numbers stay eager's bit for bit (``tests/test_fastpath.py`` checks every family).
    """
    torch._C._jit_pass_constant_propagation(graph)
    torch._C._jit_pass_constant_pooling(graph)
    _merge_repeated_data_ops(graph)
    torch._C._jit_pass_dce(graph)


#: Deterministic ops that make a new value (never a view), safe to compute once for equal inputs.
_MERGEABLE = frozenset({"aten::index", "aten::Int", "prim::NumToTensor", "prim::ListConstruct",
                        "aten::mul", "aten::div", "aten::add", "aten::sub"})
#: Ops whose output shares its first input's memory: writing into one writes into the other
#: (``prim::ListUnpack`` hands out the elements of an ``unbind``/``split`` list).
_VIEWS = frozenset({"aten::slice", "aten::select", "aten::view", "aten::reshape", "aten::detach", "aten::expand",
                    "aten::unsqueeze", "aten::squeeze", "aten::t", "aten::transpose", "aten::permute", "aten::mT",
                    "aten::narrow", "aten::diagonal", "aten::as_strided", "aten::alias", "aten::unflatten",
                    "aten::flatten", "aten::view_as", "aten::expand_as", "aten::unbind", "aten::split",
                    "prim::ListUnpack"})
#: Ops that read only a tensor's metadata: equal for the same value whatever flows through it.
_SHAPE_READS = frozenset({"aten::size", "aten::dim", "prim::device", "prim::dtype"})


def _merge_repeated_data_ops(graph: torch._C.Graph) -> None:
    """Common-subexpression elimination restricted to values no gradient flows through.

    A node is merged into an earlier one with the same kind and inputs when it reads only
    shapes (:data:`_SHAPE_READS`), or when it is in :data:`_MERGEABLE`, every input is a graph
    input, a constant or such a merged-safe value, and no output is a floating-point tensor that
    requires grad or is written in place. A graph that writes into one of its inputs is left alone.
    """
    nodes = list(graph.nodes())
    written = _written_values(nodes)
    safe = {v.unique() for v in graph.inputs()}
    if safe & written:
        return
    kept: Dict[Hashable, torch._C.Node] = {}
    for node in nodes:
        inputs = tuple(v.unique() for v in node.inputs())
        if node.kind() == "prim::Constant":
            safe.update(v.unique() for v in node.outputs())
        elif not node.attributeNames() and (node.kind() in _SHAPE_READS or (
                node.kind() in _MERGEABLE and safe.issuperset(inputs)
                and not any(_carries_gradient(v) or v.unique() in written for v in node.outputs()))):
            key = (node.kind(), inputs)
            if key in kept:
                for old, new in zip(node.outputs(), kept[key].outputs()):
                    old.replaceAllUsesWith(new)
            else:
                kept[key] = node
                safe.update(v.unique() for v in node.outputs())


def _written_values(nodes: Sequence[torch._C.Node]) -> set:
    """Values an in-place op (``aten::*_``) writes into, with every tensor they are a view of."""
    written = set()
    for node in nodes:
        if not node.kind().endswith("_"):
            continue
        for value in node.inputs():
            while True:
                written.add(value.unique())
                if value.node().kind() not in _VIEWS:
                    break
                value = value.node().inputsAt(0)
    return written


def _carries_gradient(value: torch._C.Value) -> bool:
    """Whether a recorded value is a floating-point tensor that requires grad (unknown counts as yes)."""
    t = value.type()
    if not isinstance(t, torch._C.TensorType):
        return False
    dtype = t.dtype()
    return t.requires_grad() is not False and (dtype is None or dtype.is_floating_point or dtype.is_complex)


STEPS.register("jit", TracedStep)


class GraphStep(EagerStep):
    """CUDA only: forward, backward and optimizer step captured as one CUDA graph per shape.

    The first ``warmup`` steps of each minibatch shape run eagerly on a side
    stream (they are real training steps, and they let lazy allocations happen
    outside the capture); the next one is captured and every later one is a
    replay: a copy of the indices into a static buffer and one graph launch.
    The data set is copied into a static device buffer whenever the caller
    passes a new tensor (e.g. a fresh binarization each epoch). The optimizer
    must be built with ``capturable=True`` (:func:`make_optimizer`). Random
    draws inside a graph advance the generator's Philox offset on every
    replay, so the stream matches eager execution.
    """

    name = "cuda-graph"
    warmup = 3

    def __init__(self, vae, est, optim: torch.optim.Optimizer, clip_grad_norm: Optional[float] = None) -> None:
        super().__init__(vae, est, optim, clip_grad_norm)
        if not torch.cuda.is_available():
            raise PyroVAEError("step 'cuda-graph' needs CUDA; use step='jit' or 'eager'")
        self._graphs: Dict[Hashable, Tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self._seen: Dict[Hashable, int] = {}
        self._static: Dict[str, torch.Tensor] = {}  # device buffers the graphs read: x and any labels
        self._sources: Dict[str, torch.Tensor] = {}
        self._pool = None

    def __call__(self, x: torch.Tensor, idx: torch.Tensor, **data: torch.Tensor) -> torch.Tensor:
        """One step; the returned loss tensor is overwritten by the next replay."""
        self._stage({"x": x, **data})
        key = (tuple(idx.shape), tuple(sorted(data)), recording_key(self.vae))
        if key in self._graphs:
            graph, static_idx, static_loss = self._graphs[key]
            static_idx.copy_(idx)
            graph.replay()
            return static_loss
        self._seen[key] = self._seen.get(key, 0) + 1
        if self._seen[key] <= self.warmup:
            return self._side_stream(lambda: super(GraphStep, self).__call__(idx=idx, **self._static))
        return self._capture(key, idx)

    def _stage(self, tensors: Dict[str, torch.Tensor]) -> None:
        for name, t in tensors.items():
            if self._sources.get(name) is t:
                continue
            buffer = self._static.get(name)
            if buffer is None or buffer.shape != t.shape or buffer.dtype != t.dtype:
                # New buffers: graphs that read the old ones are dropped and captured again.
                self._static[name], self._graphs, self._seen = torch.empty_like(t), {}, {}
            self._static[name].copy_(t)
            self._sources[name] = t

    @staticmethod
    def _side_stream(fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            out = fn()
        torch.cuda.current_stream().wait_stream(stream)
        return out

    def _capture(self, key: Hashable, idx: torch.Tensor) -> torch.Tensor:
        static_idx = idx.clone()
        graph = torch.cuda.CUDAGraph()
        self.optim.zero_grad(set_to_none=True)  # the graph's backward allocates the grads it reuses
        with pyro.validation_enabled(False), torch.cuda.graph(graph, pool=self._pool):
            static_loss = self.loss(idx=static_idx, **self._static)
            self._update(static_loss)
            static_loss = static_loss.detach()
        self._pool = graph.pool()
        self._graphs[key] = (graph, static_idx, static_loss)
        graph.replay()  # capturing records the step without running it
        return static_loss


STEPS.register("cuda-graph", GraphStep)


#: Training steps from which ``auto`` compiles the step on CPU. Compiling the 784-400-20 VAE's
#: step costs 29 s with a cold Inductor cache and 4.5 s with a warm one (the import of Inductor
#: included), and saves about 1 ms of a 5 ms step on the 2-core CPU: a cold compile is paid back
#: after about 30,000 steps (docs/performance.md, "The compiled step").
COMPILE_PAYS_AFTER = 30_000


def default_step(est, device: torch.device, optimizer: torch.optim.Optimizer,
                 total_steps: Optional[int] = None) -> str:
    """The fastest step for the whole run: a CUDA graph on CUDA (capturable optimizers); on CPU
    ``compiled`` for a run of at least :data:`COMPILE_PAYS_AFTER` steps where a C++ compiler is
    found, else ``jit`` (``eager`` for estimators that are not :func:`traceable`)."""
    group = optimizer.param_groups[0]
    if device.type == "cuda" and group.get("capturable", False):
        return "cuda-graph"
    if device.type == "cpu" and (total_steps or 0) >= COMPILE_PAYS_AFTER and cpp_compiler_found():
        return "compiled"
    return "jit" if traceable(est) else "eager"


def cpp_compiler_found() -> bool:
    """Whether the C++ compiler Inductor calls on CPU (``$CXX``, else ``g++``) is on the ``PATH``."""
    return shutil.which(os.environ.get("CXX", "g++")) is not None


def build_step(name: str, vae, est, optim: torch.optim.Optimizer, device: torch.device,
               clip_grad_norm: Optional[float] = None, total_steps: Optional[int] = None) -> EagerStep:
    """The step called ``name``; ``"auto"`` is :func:`default_step` for a run of ``total_steps``
    steps, falling back to eager execution (with a warning) where a model cannot be recorded."""
    if name != "auto":
        return STEPS.get(name, "step")(vae, est, optim, clip_grad_norm)
    cls = STEPS[default_step(est, device, optim, total_steps)]
    return cls(vae, est, optim, clip_grad_norm, strict=False) if issubclass(cls, TracedStep) else \
        cls(vae, est, optim, clip_grad_norm)


# Step "compiled" lives in its own module, which extends TracedStep and registers itself in STEPS
# (it imports Inductor only when a step is compiled).
importlib.import_module(f"{__package__}.compiled")

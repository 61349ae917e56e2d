"""The compiled training step: the Pyro loss and its gradient captured as one aten graph, compiled by Inductor.

:class:`CompiledStep` (``step="compiled"``, CLI ``--step compiled``) runs the user's ordinary
Pyro ``model``/``guide`` once per minibatch shape and recording key under
:func:`torch.fx.experimental.proxy_tensor.make_fx`, below Pyro: the messengers, traces and
distributions are Python that runs while capturing, and what is left is the tensor
arithmetic of the loss **and of its backward pass** (``torch.autograd.grad`` inside the
capture), one FX graph of aten ops. That graph is compiled by a backend from
:data:`BACKENDS`: ``inductor`` (the default) fuses its element-wise work into a few
C++/OpenMP (CPU) or Triton (CUDA, with CUDA graphs) kernels; ``aten`` runs the captured
graph as it is, which shows that the capture alone computes eager's numbers.

Random draws stay on torch's global generator (Inductor's ``fallback_random``, set only
while compiling), so a compiled run draws the same noise as an eager one and a resumed run
equals an uninterrupted one. The optimizer stays the torch optimizer ``fit`` built (its
state is what checkpoints hold). Compiled kernels are cached on disk by Inductor's FX graph
cache (``$TORCHINDUCTOR_CACHE_DIR``, by default ``/tmp/torchinductor_$USER``), so a second
run of the same model and shapes compiles in seconds. The capture is checked against eager
execution before first use, as :class:`~pyrovae.fastpath.TracedStep` checks its recording.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import pyro
import torch

from .fastpath import STEPS, TracedStep
from .registry import Registry

#: A compiler of a captured graph: ``backend(graph, example_inputs)`` returns a callable with the graph's signature.
Backend = Callable[[torch.fx.GraphModule, List[torch.Tensor]], Callable[..., Sequence[torch.Tensor]]]

#: Compilers of the captured loss-and-gradient graph, by name.
BACKENDS: Registry[Backend] = Registry("compile backend")


@BACKENDS.register("aten")
def run_as_captured(graph: torch.fx.GraphModule, inputs: List[torch.Tensor]) -> Callable[..., Sequence[torch.Tensor]]:
    """No compiler: the captured aten graph runs op for op (what the capture alone computes)."""
    return graph


@BACKENDS.register("inductor")
def inductor(graph: torch.fx.GraphModule, inputs: List[torch.Tensor]) -> Callable[..., Sequence[torch.Tensor]]:
    """Inductor's compiler, with random ops left to torch's generator and, on CUDA, CUDA graphs."""
    from torch._inductor import config  # imported on first use: it loads TorchDynamo (seconds)
    from torch._inductor.compile_fx import compile_fx

    from torch._guards import TracingContext, tracing
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    cuda = inputs[0].device.type == "cuda"
    # fallback_random: Inductor's own Philox draws would differ from eager's stream. The tracing
    # context's shape environment is what Inductor's FX graph cache (on disk) asks for.
    with config.patch({"fallback_random": True, "triton.cudagraphs": cuda}), \
            tracing(TracingContext(FakeTensorMode(shape_env=ShapeEnv()))):
        compiled = compile_fx(graph, inputs)
    if not cuda:
        return compiled

    def replay(*args: torch.Tensor) -> Sequence[torch.Tensor]:
        torch.compiler.cudagraph_mark_step_begin()  # the last step's outputs have been consumed
        return compiled(*args)
    return replay


class _Precomputed(torch.autograd.Function):
    """The captured loss as an autograd node whose backward hands out the gradients computed with it."""

    @staticmethod
    def forward(ctx, run: Callable, used: Sequence[bool], *inputs: torch.Tensor) -> torch.Tensor:
        loss, *grads = run(*inputs)
        ctx.grads, ctx.used, ctx.rest = grads, used, len(inputs) - len(used)
        return loss

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        grads = iter(ctx.grads)
        # grad_loss is 1 in a training step: multiplying by it leaves every bit as computed.
        params = [grad_loss * next(grads) if used else None for used in ctx.used]
        return (None, None, *params, *[None] * ctx.rest)


class CompiledLoss:
    """A compiled capture, called like a recording: ``loss(*params, *args)`` with ``loss.backward()`` working."""

    def __init__(self, run: Callable[..., Sequence[torch.Tensor]], used: Sequence[bool]) -> None:
        self.run, self.used = run, tuple(used)

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The loss; its gradient with respect to the first ``len(used)`` inputs was computed with it."""
        return _Precomputed.apply(self.run, self.used, *inputs)

    def with_grads(self, *inputs: torch.Tensor) -> Tuple[torch.Tensor, List[Optional[torch.Tensor]]]:
        """``(loss, grads)``: the gradient of each of the first ``len(used)`` inputs (None where unused),
        straight from the compiled graph, without an autograd pass."""
        loss, *computed = self.run(*inputs)
        grads = iter(computed)
        return loss, [next(grads) if used else None for used in self.used]


def capture(loss_fn: Callable[..., torch.Tensor], module: torch.nn.Module,
            args: Sequence[torch.Tensor]) -> Tuple[torch.fx.GraphModule, List[bool]]:
    """``(graph, used)``: the aten graph of ``(loss, *gradients)`` of ``loss_fn(*args)`` with respect to
    the parameters of ``module``, and which parameters have a gradient. The graph takes
    ``(*module.parameters(), *args)``: the parameters are inputs, not constants."""
    # Imported on first use, like Inductor.
    from torch._subclasses.fake_tensor import DataDependentOutputException
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

    params = dict(module.named_parameters())
    names = list(params)
    used: List[bool] = []

    def loss_and_grads(*inputs: torch.Tensor) -> tuple:
        leaves = [p.detach().requires_grad_() for p in inputs[: len(names)]]
        with torch.enable_grad():
            loss = torch.func.functional_call(_Wrapped(module, loss_fn), {f"inner.{n}": p for n, p in
                                              zip(names, leaves)}, tuple(inputs[len(names):]))
            grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        used[:] = [g is not None for g in grads]
        return (loss.detach(), *[g for g in grads if g is not None])

    # Fake tensors: the capture computes shapes only (and draws no random numbers), and a value the
    # Python reads (`.item()`, `float(t)`, `if t > 0`) is an error rather than a frozen constant.
    try:
        with pyro.validation_enabled(False):
            graph = make_fx(loss_and_grads, tracing_mode="fake", _allow_non_fake_inputs=True)(
                *[p.detach() for p in params.values()], *args)
    except (GuardOnDataDependentSymNode, DataDependentOutputException):
        raise RuntimeError("the model's Python reads a tensor's value (.item(), float(t), if t > 0), "
                           "which a capture cannot") from None
    return graph, used


class _Wrapped(torch.nn.Module):
    """``loss_fn`` as the forward of a module that owns ``inner``, for :func:`torch.func.functional_call`."""

    def __init__(self, inner: torch.nn.Module, loss_fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.inner, self.loss_fn = inner, loss_fn

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(*args)


class CompiledStep(TracedStep):
    """The step with loss and gradient captured by ``make_fx`` and compiled, once per minibatch shape.

    Everything else is :class:`~pyrovae.fastpath.TracedStep`'s: one capture per shape and
    recording key, made on a forked RNG stream, refused for ``pyro.param`` sites outside the
    module, and checked on another minibatch against eager execution before first use. A
    model that cannot be captured or compiled (or whose compiled numbers differ) trains
    eagerly with an :class:`~pyrovae.fastpath.EagerFallbackWarning`; ``strict=True`` raises
    :class:`~pyrovae.errors.PyroVAEError` instead.

    :param backend: a name in :data:`BACKENDS`.
    """

    name = "compiled"
    keeps_hooks = True  # make_fx records what a hook computes during the captured backward pass

    def __init__(self, vae, est, optim: torch.optim.Optimizer, clip_grad_norm: Optional[float] = None,
                 strict: bool = False, backend: str = "inductor") -> None:
        self.compile = BACKENDS.get(backend, "compile backend")
        super().__init__(vae, est, optim, clip_grad_norm, strict=strict)

    def __call__(self, x: torch.Tensor, idx: torch.Tensor, **data: torch.Tensor) -> torch.Tensor:
        """Take one step; return the loss as a detached device tensor (no host sync).

        The compiled graph hands out the gradients with the loss, so they go to ``.grad``
        directly: the same tensors ``loss.backward()`` would store there (a gradient is moved
        into an empty ``.grad``, not copied), without an autograd pass or a multiplication by 1
        per parameter (about a tenth of the step on the 784-400-20 VAE).
        """
        recording, args = self._recording(x, idx, data)
        if recording is None:  # the model cannot be captured: the eager step
            return super().__call__(x, idx, **data)
        self.optim.zero_grad(set_to_none=True)
        loss, grads = recording.with_grads(*self._params, *args)
        for p, g in zip(self._params, grads):
            p.grad = g
        self._apply_grads()
        return loss

    def _trace(self, args: tuple, names: tuple) -> CompiledLoss:
        graph, used = capture(lambda *a: self._eager_loss(a, names), self.vae, args)
        run = self.compile(graph, [p.detach() for p in self._params] + list(args))
        return CompiledLoss(run, used)


STEPS.register("compiled", CompiledStep)


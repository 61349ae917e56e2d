"""Adam and Adagrad on torch's own fused kernels, without ``torch.optim``'s import of TorchDynamo.

``torch.optim.Optimizer`` imports ``torch._dynamo`` the first time a parameter group is added or
a step is taken (it marks its methods as not to be compiled). That import takes about 2 s on a
2-core CPU: a fifth of a 10-epoch ``pyrovae train`` on ``mnist-5k`` as a whole process
(``benchmarks/bench_startup.py``). The classes here call the very kernels that
``torch.optim.Adam(fused=True)`` and ``torch.optim.Adagrad(fused=True)`` call
(``torch._fused_adam_``, ``torch._fused_adagrad_``), after the same step-counter update, so every
update is bit-identical to torch's; and they keep torch's ``state_dict`` layout, so a checkpoint
written by either loads into the other (``tests/test_optim.py`` checks both).

:func:`pyrovae.fastpath.make_optimizer` uses them where the kernel exists (Adam on CPU and CUDA,
Adagrad on CPU) and the optimizer need not be capturable by a CUDA graph; everywhere else it
builds the ``torch.optim`` class itself. They implement what a training step uses
(``step``, ``zero_grad``, ``param_groups``, ``state``, ``state_dict``, ``load_state_dict``) over one
parameter group, not the hooks of ``torch.optim.Optimizer``.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections import defaultdict
from typing import Any, Dict, Iterable, List, Tuple

import torch

#: The dtype of the step counter of torch's fused optimizers (``_get_scalar_dtype(is_fused=True)``).
STEP_DTYPE = torch.float32


def torch_defaults(cls: type) -> Dict[str, Any]:
    """The keyword defaults of a ``torch.optim`` class: the options of its parameter groups."""
    return {name: p.default for name, p in inspect.signature(cls).parameters.items()
            if name != "params" and p.default is not inspect.Parameter.empty}


class FusedOptimizer(ABC):
    """``torch.optim``'s interface and ``state_dict`` layout over one of torch's fused kernels.

    A subclass names the ``torch.optim`` class it mirrors (``mirrors``: its defaults and state
    layout), the device types its kernel supports, and implements :meth:`_update`.

    :param params: the parameters (one group).
    :param options: the mirrored class's keyword options (``lr`` and so on).
    """

    #: The ``torch.optim`` class whose defaults, state layout and fused kernel this one mirrors.
    mirrors: type = torch.optim.Optimizer
    #: Device types with a fused kernel for this update.
    devices: Tuple[str, ...] = ()

    def __init__(self, params: Iterable[torch.Tensor], **options: Any) -> None:
        self.defaults = {**torch_defaults(self.mirrors), **options, "fused": True}
        self.param_groups: List[Dict[str, Any]] = [{**self.defaults, "params": list(params)}]
        self.state: Dict[torch.Tensor, Dict[str, torch.Tensor]] = defaultdict(dict)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient (to ``None`` by default, as torch does)."""
        for p in self.param_groups[0]["params"]:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        group = self.param_groups[0]
        chunks: Dict[Tuple[torch.device, torch.dtype], List[torch.Tensor]] = defaultdict(list)
        for p in group["params"]:
            if p.grad is not None:
                chunks[p.device, p.dtype].append(p)  # one kernel launch per device and dtype, as torch groups
        for params in chunks.values():
            states = [self._state(p, group) for p in params]
            steps = [s["step"] for s in states]
            torch._foreach_add_(steps, 1)  # torch counts the step before its fused kernel reads it
            self._update(group, params, [p.grad for p in params], states)
        return loss

    def _state(self, p: torch.Tensor, group: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        state = self.state[p]
        if not state:
            state.update(self._initial_state(p, group))
        return state

    @abstractmethod
    def _initial_state(self, p: torch.Tensor, group: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """A parameter's state before its first update (torch's own initial values)."""

    @abstractmethod
    def _update(self, group: Dict[str, Any], params: List[torch.Tensor], grads: List[torch.Tensor],
                states: List[Dict[str, torch.Tensor]]) -> None:
        """The fused update of ``params`` (one device and dtype), after their step counters moved on."""

    def state_dict(self) -> Dict[str, Any]:
        """torch's layout: per-parameter state by index, and the group's options with its indices."""
        params = self.param_groups[0]["params"]
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        return {"state": {i: dict(self.state[p]) for i, p in enumerate(params) if p in self.state},
                "param_groups": [{**group, "params": list(range(len(params)))}]}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Load a ``state_dict`` of this class or of the ``torch.optim`` class it mirrors."""
        (saved,) = state_dict["param_groups"]
        params = self.param_groups[0]["params"]
        if len(saved["params"]) != len(params):
            raise ValueError("loaded state dict has a different number of parameters than the optimizer")
        options = {k: v for k, v in saved.items() if k != "params"}
        self.param_groups[0].update({**options, "fused": True})
        self.state = defaultdict(dict)
        for index, p in zip(saved["params"], params):
            if index in state_dict["state"]:
                self.state[p] = {key: _placed(value, p, key) for key, value in state_dict["state"][index].items()}


def _placed(value: Any, p: torch.Tensor, key: str) -> Any:
    """A loaded state value on ``p``'s device: the step counter in the fused dtype, the rest in ``p``'s
    dtype (torch's ``Optimizer._process_value_according_to_param_policy`` for fused optimizers)."""
    if not torch.is_tensor(value):
        return value
    if key == "step":
        return value.to(dtype=STEP_DTYPE, device=p.device)
    return value.to(dtype=p.dtype, device=p.device) if p.is_floating_point() else value.to(device=p.device)


def _counter(p: torch.Tensor) -> torch.Tensor:
    return torch.zeros((), dtype=STEP_DTYPE, device=p.device)


class FusedAdam(FusedOptimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1) as ``torch.optim.Adam(fused=True)`` computes it."""

    mirrors = torch.optim.Adam
    devices = ("cpu", "cuda")

    def _initial_state(self, p: torch.Tensor, group: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        zeros = lambda: torch.zeros_like(p, memory_format=torch.preserve_format)  # noqa: E731
        state = {"step": _counter(p), "exp_avg": zeros(), "exp_avg_sq": zeros()}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = zeros()
        return state

    def _update(self, group, params, grads, states) -> None:
        beta1, beta2 = group["betas"]
        kernel = torch._fused_adamw_ if group.get("decoupled_weight_decay") else torch._fused_adam_
        kernel(params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
               [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else [],
               [s["step"] for s in states], amsgrad=group["amsgrad"], lr=group["lr"], beta1=beta1, beta2=beta2,
               weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
               grad_scale=None, found_inf=None)


class FusedAdagrad(FusedOptimizer):
    """Adagrad (Duchi et al. 2011), the AEVB paper's optimizer, as ``torch.optim.Adagrad(fused=True)``."""

    mirrors = torch.optim.Adagrad
    devices = ("cpu",)

    def __init__(self, params: Iterable[torch.Tensor], **options: Any) -> None:
        super().__init__(params, **options)
        group = self.param_groups[0]
        for p in group["params"]:  # torch creates Adagrad's accumulators at construction, not at the first step
            self._state(p, group)

    def _initial_state(self, p: torch.Tensor, group: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        return {"step": _counter(p),
                "sum": torch.full_like(p, group["initial_accumulator_value"], memory_format=torch.preserve_format)}

    def _update(self, group, params, grads, states) -> None:
        torch._fused_adagrad_(params, grads, [s["sum"] for s in states], [s["step"] for s in states],
                              lr=group["lr"], lr_decay=group["lr_decay"], weight_decay=group["weight_decay"],
                              eps=group["eps"], maximize=group["maximize"], grad_scale=None, found_inf=None)


#: The fused stand-in of each ``torch.optim`` class in :data:`pyrovae.fastpath.OPTIMIZERS` that has one.
FUSED: Dict[type, type] = {cls.mirrors: cls for cls in (FusedAdam, FusedAdagrad)}


def fused_optimizer(cls: type, params: Iterable[torch.Tensor], device: torch.device, **options: Any):
    """``FUSED[cls](params, **options)`` when ``cls`` has a fused stand-in with a kernel for
    ``device``, else ``None`` (the caller builds ``cls`` itself)."""
    fused = FUSED.get(cls)
    if fused is None or device.type not in fused.devices:
        return None
    return fused(params, **options)

"""Multi-layer perceptrons for the encoder and decoder.

The paper's MNIST networks have one hidden layer of 500 tanh units
(Kingma & Welling 2013, section 5); PyTorch's example VAE uses 400 ReLU
units. Both are ``mlp([784, H, out], activation)``.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from .registry import Registry
from .validation import check_positive

ACTIVATIONS: Registry[type] = Registry("activation")
for _name, _cls in (("relu", nn.ReLU), ("tanh", nn.Tanh), ("softplus", nn.Softplus),
                    ("elu", nn.ELU), ("leaky-relu", nn.LeakyReLU), ("gelu", nn.GELU),
                    ("sigmoid", nn.Sigmoid)):
    ACTIVATIONS.register(_name, _cls)


def mlp(sizes: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """Linear layers of the given ``sizes`` with ``activation`` between them, none after the last."""
    check_positive(**{f"layer {i} size": s for i, s in enumerate(sizes)})
    act = ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(act())
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


def _paper_init(module: nn.Module) -> None:
    """Every linear weight and bias drawn from N(0, 0.01^2): Kingma & Welling 2013, section 5."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, 0.0, 0.01)
            nn.init.normal_(layer.bias, 0.0, 0.01)


#: Initializations of a built model's linear layers, by name: ``torch`` keeps PyTorch's default
#: (uniform, scaled by fan-in), ``paper`` is the AEVB paper's. Applied as ``INITS[name](vae)``,
#: drawing from torch's global stream (seed it first).
INITS: Registry = Registry("initialization")
INITS.register("torch", lambda module: None)
INITS.register("paper", _paper_init)

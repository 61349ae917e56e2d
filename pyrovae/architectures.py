"""Encoder and decoder architectures, resolved by name (``--arch``, ``VAE(arch=...)``).

``mlp`` (the default) is the paper's network: fully connected layers of the ``hidden`` sizes
(Kingma & Welling 2013, section 5). ``conv`` is for image data: two strided convolutions
(32 then 64 channels, kernel 4, stride 2, padding 1) halve the image twice (28x28 -> 14x14 ->
7x7), and the flattened features go through the ``hidden`` layers to the posterior's head; the
decoder mirrors it, the ``hidden`` layers up to a 64x7x7 map, then two transposed convolutions
back to the image, with one output channel per raw output the likelihood needs per pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .errors import PyroVAEError
from .networks import ACTIVATIONS, mlp
from .registry import Registry

#: Channels of the conv encoder's strided convolutions, bottom up; the decoder runs them backwards.
CONV_CHANNELS = (32, 64)
_KERNEL, _STRIDE, _PAD = 4, 2, 1  # each convolution halves the height and width (rounding down)


@dataclass(frozen=True)
class NetworkSizes:
    """What an architecture builds its two networks from.

    :param x_dim: size of a data row; ``enc_in`` is ``x_dim`` plus any label columns appended to it.
    :param enc_out: raw outputs of the encoder (the posterior's head size).
    :param dec_in: decoder inputs (the latent size, plus label columns).
    :param outputs_per_dim: raw decoder outputs per data dimension (the likelihood's).
    :param interleaved: those outputs are laid out dimension by dimension (the likelihood's).
    :param hidden: hidden layer sizes of the encoder; the decoder mirrors them.
    :param activation: activation between layers (``networks.ACTIVATIONS``).
    :param image_shape: ``(height, width)`` of image rows, or ``None``.
    """

    x_dim: int
    enc_in: int
    enc_out: int
    dec_in: int
    outputs_per_dim: int
    hidden: Tuple[int, ...]
    activation: str
    image_shape: Optional[Tuple[int, int]] = None
    interleaved: bool = False


@dataclass(frozen=True)
class Architecture:
    """A registered architecture: how to build the encoder and the decoder from :class:`NetworkSizes`.

    :param encoder: ``encoder(sizes)``, a module mapping rows ``(..., enc_in)`` to ``(..., enc_out)``.
    :param decoder: ``decoder(sizes)``, a module mapping ``(..., dec_in)`` to ``(..., outputs_per_dim * x_dim)``.
    :param description: one line for the docs.
    """

    name: str
    encoder: Callable[[NetworkSizes], nn.Module]
    decoder: Callable[[NetworkSizes], nn.Module]
    description: str = ""


ARCHITECTURES: Registry[Architecture] = Registry("architecture")
"""Architecture name -> :class:`Architecture`: ``mlp`` and ``conv``."""


def _mlp_encoder(s: NetworkSizes) -> nn.Module:
    return mlp([s.enc_in, *s.hidden, s.enc_out], s.activation)


def _mlp_decoder(s: NetworkSizes) -> nn.Module:
    return mlp([s.dec_in, *reversed(s.hidden), s.outputs_per_dim * s.x_dim], s.activation)


def feature_sizes(image_shape: Tuple[int, int], layers: int = len(CONV_CHANNELS)) -> List[Tuple[int, int]]:
    """Height and width before and after each strided convolution: ``[(28, 28), (14, 14), (7, 7)]``."""
    sizes = [tuple(image_shape)]
    for _ in range(layers):
        h, w = sizes[-1]
        sizes.append(((h + 2 * _PAD - _KERNEL) // _STRIDE + 1, (w + 2 * _PAD - _KERNEL) // _STRIDE + 1))
    return sizes


class ConvEncoder(nn.Module):
    """Strided convolutions over the image, then an MLP head; columns after the image (labels) join the head.

    :param image_shape: ``(height, width)``; the first ``height * width`` input columns are the image.
    :param extra: columns after the image (the one-hot label of a conditional VAE), fed to the head.
    :param hidden: the head's hidden sizes; ``out`` its outputs.
    """

    def __init__(self, image_shape: Tuple[int, int], extra: int, hidden: Sequence[int], out: int,
                 activation: str, channels: Sequence[int] = CONV_CHANNELS) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        act, layers, c_in = ACTIVATIONS[activation], [], 1
        for c in channels:
            layers += [nn.Conv2d(c_in, c, _KERNEL, _STRIDE, _PAD), act()]
            c_in = c
        self.conv = nn.Sequential(*layers, nn.Flatten())
        h, w = feature_sizes(image_shape, len(channels))[-1]
        self.head = mlp([c_in * h * w + extra, *hidden, out], activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw head outputs ``(..., out)`` of rows ``(..., height * width + extra)``."""
        pixels = math.prod(self.image_shape)
        image = x[..., :pixels].reshape(-1, 1, *self.image_shape)
        features = self.conv(image).reshape(*x.shape[:-1], -1)
        if x.shape[-1] > pixels:
            features = torch.cat([features, x[..., pixels:]], dim=-1)
        return self.head(features)


class ConvDecoder(nn.Module):
    """An MLP up to the smallest feature map, then transposed convolutions back to the image.

    Output channel ``c`` is the ``c``-th block of ``height * width`` raw outputs (``[log alpha |
    log beta]`` for the ``beta`` likelihood), or with ``interleaved`` the ``c``-th output of each
    pixel (``categorical``'s logits, pixel by pixel).
    """

    def __init__(self, image_shape: Tuple[int, int], z_in: int, hidden: Sequence[int], out_channels: int,
                 activation: str, channels: Sequence[int] = CONV_CHANNELS, interleaved: bool = False) -> None:
        super().__init__()
        self.interleaved = interleaved
        sizes, act = feature_sizes(image_shape, len(channels)), ACTIVATIONS[activation]
        self.start = (channels[-1], *sizes[-1])
        self.head = nn.Sequential(mlp([z_in, *hidden, math.prod(self.start)], activation), act())
        outs = [*reversed(channels[:-1]), out_channels]
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(reversed(channels), outs)):
            if i:
                layers.append(act())
            # output_padding restores the row/column that the stride-2 convolution rounded away.
            big, small = sizes[-2 - i], sizes[-1 - i]
            pad = (big[0] - _STRIDE * small[0], big[1] - _STRIDE * small[1])
            layers.append(nn.ConvTranspose2d(c_in, c_out, _KERNEL, _STRIDE, _PAD, output_padding=pad))
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Raw likelihood outputs ``(..., out_channels * height * width)`` of latents ``(..., z_in)``."""
        out = self.deconv(self.head(z).reshape(-1, *self.start))
        return (out.permute(0, 2, 3, 1) if self.interleaved else out).reshape(*z.shape[:-1], -1)


def _image(s: NetworkSizes) -> Tuple[int, int]:
    """The image shape of ``s``, refusing data that are not images the convolutions can halve twice."""
    if s.image_shape is None:
        raise PyroVAEError("architecture 'conv' is for image data, and these data have no image shape "
                           "(height x width); use --arch mlp")
    side = 2 ** len(CONV_CHANNELS)
    if math.prod(s.image_shape) != s.x_dim or min(s.image_shape) < side:
        raise PyroVAEError(f"architecture 'conv' needs rows that are images of at least {side}x{side} pixels, "
                           f"got image shape {tuple(s.image_shape)} for rows of {s.x_dim} values")
    return tuple(s.image_shape)


def _conv_encoder(s: NetworkSizes) -> nn.Module:
    return ConvEncoder(_image(s), s.enc_in - s.x_dim, s.hidden, s.enc_out, s.activation)


def _conv_decoder(s: NetworkSizes) -> nn.Module:
    return ConvDecoder(_image(s), s.dec_in, tuple(reversed(s.hidden)), s.outputs_per_dim, s.activation,
                       interleaved=s.interleaved)


ARCHITECTURES.register("mlp", Architecture("mlp", _mlp_encoder, _mlp_decoder,
                                           "fully connected layers of the --hidden sizes"))
ARCHITECTURES.register("conv", Architecture(
    "conv", _conv_encoder, _conv_decoder, "image data: 2 strided convolutions (32, 64 channels) then the --hidden "
                                          "layers; the decoder mirrors it with transposed convolutions"))

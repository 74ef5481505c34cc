"""Small network pieces shared by the built-in encoders and decoders."""
from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU, "elu": nn.ELU, "tanh": nn.Tanh}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def mlp(sizes: list[int], act: str = "relu") -> nn.Sequential:
    """Linear layers with an activation between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation(act))
    return nn.Sequential(*layers)


def conv_stack(in_channels: int, channels: list[int], act: str = "relu") -> nn.Sequential:
    """Stride-2 4x4 convolutions, each halving the spatial size."""
    layers: list[nn.Module] = []
    for c in channels:
        layers += [nn.Conv2d(in_channels, c, 4, stride=2, padding=1), activation(act)]
        in_channels = c
    return nn.Sequential(*layers)


def deconv_stack(channels: list[int], act: str = "relu") -> nn.Sequential:
    """Stride-2 4x4 transposed convolutions, each doubling the spatial size."""
    layers: list[nn.Module] = []
    for a, b in zip(channels[:-1], channels[1:]):
        layers += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), activation(act)]
    return nn.Sequential(*layers)


def numel(shape) -> int:
    return int(math.prod(shape))


@torch.no_grad()
def output_shape(module: nn.Module, in_shape) -> tuple[int, ...]:
    return tuple(module(torch.zeros(1, *in_shape)).shape[1:])

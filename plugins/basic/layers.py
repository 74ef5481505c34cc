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


def mlp_parameter_count(sizes: list[int]) -> int:
    """Parameters of ``mlp(sizes)``: a weight and a bias per layer, from the sizes alone."""
    return sum(int(a) * int(b) + int(b) for a, b in zip(sizes[:-1], sizes[1:]))


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
    """The shape ``module`` maps ``in_shape`` to (no batch dimension): by arithmetic for a stack of convolutions,
    activations and a flatten (so a model built with its weights on the meta device runs no meta kernel, which
    would import torch's compiler stack), otherwise by one forward pass of a zero image."""
    shape = _arithmetic_shape(module, tuple(in_shape))
    return shape if shape is not None else tuple(module(torch.zeros(1, *in_shape)).shape[1:])


def _arithmetic_shape(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    if isinstance(module, nn.Sequential):
        for m in module:
            shape = _arithmetic_shape(m, shape)
            if shape is None:
                return None
        return shape
    if isinstance(module, tuple(ACTIVATIONS.values())):
        return shape
    if isinstance(module, nn.Flatten) and module.start_dim == 1 and module.end_dim == -1:
        return (numel(shape),)
    if (isinstance(module, nn.Conv2d) and len(shape) == 3 and isinstance(module.padding, tuple)
            and module.padding_mode == "zeros"):
        hw = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in
              zip(shape[1:], module.padding, module.dilation, module.kernel_size, module.stride)]
        return (module.out_channels, *hw)
    return None

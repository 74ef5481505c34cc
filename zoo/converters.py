"""Named converters: upstream checkpoint layouts -> the zoo's state-dict names.

A card's ``weights.converter`` names one; it maps the upstream tensors to the keys of the
assembled LatentModel.  ``.safetensors`` files are read directly; a PyTorch ``.bin`` is read with
``torch.load(weights_only=True)`` (tensors only, never arbitrary unpickling).
"""
from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Callable

import torch

from .errors import WeightsError

# name -> "module:function"; imported on use so the zoo starts fast
CONVERTERS: dict[str, str] = {
    "diffusers-unet": "zoo_plugins.diffusion.convert:diffusers_ddpm_to_zoo",
}


def get_converter(name: str) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    if name not in CONVERTERS:
        raise WeightsError(f"unknown weights converter {name!r}; known: {', '.join(sorted(CONVERTERS))}")
    module, func = CONVERTERS[name].split(":")
    return getattr(import_module(module), func)


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a ``.safetensors`` file or (safely) from a PyTorch ``.bin``."""
    path = Path(path)
    if path.suffix == ".bin":
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise WeightsError(f"weights file {path} could not be read as tensors only: {e}") from None
        if not isinstance(state, dict):
            raise WeightsError(f"weights file {path} does not hold a state dict")
        return state
    from .checkpoint import read_weights

    return read_weights(path)


def read_converted(path: str | Path, converter: str | None) -> dict[str, torch.Tensor]:
    state = read_state(path)
    return get_converter(converter)(state) if converter else state

"""The data space a model's likelihood scores: which data, which shape, and how the pixels are discretised.

Bits/dim and FID are comparable only between models on one space.  The discretisation is read from the
likelihood's behaviour, not its name (the core names no plugin): a likelihood whose ``prepare`` maps every
grey value to two values is on the binarised space; a discrete one that keeps them is on the 8-bit space
(a probability mass over the 256 values of a pixel); one with ``discrete = False`` is a continuous density.
A likelihood may state its space itself with a ``data_space`` attribute (``"binarised"``, ``"8-bit"`` or
``"continuous"``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

KINDS = ("binarised", "8-bit", "continuous")
LABELS = {"binarised": "binarised (x = 1[x01 > 0.5]; a mass over {0, 1} per pixel)",
          "8-bit": "8-bit (a mass over the 256 values of a pixel)",
          "continuous": "continuous density (bits/dim are not masses: not comparable with discrete spaces)"}


@dataclass(frozen=True)
class DataSpace:
    """``data`` (spec), ``shape`` (C, H, W) and ``kind`` (binarised, 8-bit or continuous)."""

    data: str
    shape: tuple[int, ...]
    kind: str

    @property
    def key(self) -> str:
        return f"{self.data} {'x'.join(map(str, self.shape))} {self.kind}"

    @property
    def label(self) -> str:
        return f"{self.data}, {'x'.join(map(str, self.shape))}, {LABELS[self.kind]}"


def likelihood_kind(likelihood) -> str:
    """binarised, 8-bit or continuous (see the module docstring)."""
    stated = getattr(likelihood, "data_space", None)
    if stated is not None:
        if stated not in KINDS:
            from zoo.errors import PluginError

            raise PluginError(f"likelihood {getattr(likelihood, 'name', likelihood)!r}: data_space must be one of "
                              f"{list(KINDS)}, got {stated!r}")
        return stated
    if not getattr(likelihood, "discrete", True):
        return "continuous"
    probe = torch.linspace(0, 1, 256).view(1, 1, 16, 16)
    seen = likelihood.to_unit(likelihood.prepare(probe))
    return "binarised" if torch.unique(torch.round(seen * 255)).numel() <= 2 else "8-bit"


def data_space(model, data: str) -> DataSpace:
    """The space ``model`` scores ``data`` in."""
    likelihood = model.decoder.likelihood
    return DataSpace(data, tuple(model.data_shape), likelihood_kind(likelihood))

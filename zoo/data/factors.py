""":func:`load_factors`: the known generative factors of a data set drawn from them (e.g. ``zoo:shapes``).

A built-in data set declares its factors (``EmbeddedDataset.factors``); their values are stored beside
the images, one row per image in the split's order, so row n of :func:`load_factors` describes image n
of :func:`zoo.data.load_tensors` for the same spec and split.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoo.errors import DataError


@dataclass(frozen=True)
class Factors:
    """Factor values ``[N, K]`` (float64) and their names (K)."""

    names: tuple[str, ...]
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def take(self, rows: slice) -> "Factors":
        """The same factors for a slice of the rows (as the images are sliced)."""
        return Factors(self.names, self.values[rows])


def load_factors(spec: str, split: str = "train") -> Factors | None:
    """The factor values of a split of ``spec``, or None when the source declares no factors."""
    from zoo.contracts import factors_of
    from zoo.data.embedded import _materialise
    from zoo.data.sources import _resolve

    kind, target = _resolve(spec)
    names = factors_of(target) if kind == "builtin" else ()
    if not names:
        return None
    if split not in target.splits:
        raise DataError(f"--data {spec!r} has no split {split!r}; available: {list(target.splits)}")
    root = _materialise(target)
    path = root / f"{split}-factors.npy"
    values = np.load(path)
    if values.shape != (target.splits[split], len(names)):
        raise DataError(f"--data {spec!r}: the cached {path} is damaged (shape {values.shape}); delete {root} "
                        "to rebuild")
    return Factors(names, values)

"""Small classifier CNNs whose pooled last conv layer gives features for FID-like numbers on the
embedded data sets (as MNIST papers do: Inception features mean little on 8x8 or 28x28 digits).

A plugin registers a :class:`FeatureNetwork` per data set through the ``register_feature_networks``
hook; its weights are a safetensors file pinned by sha256 and loaded offline.  ``tools/train_features.py``
trains them on the embedded training split.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from zoo.errors import WeightsError


@dataclass(frozen=True)
class FeatureNetwork:
    """A feature network for one data set: ``data`` (the spec it was trained on, e.g. ``zoo:digits``),
    the image shape, its weights file and their sha256, and how it was made (``recipe``)."""

    name: str
    data: str
    shape: tuple[int, int, int]
    weights: Path
    sha256: str
    recipe: str = ""
    widths: tuple[int, int, int] = (16, 32, 64)

    @property
    def dims(self) -> int:
        return self.widths[-1]

    def build(self) -> "FeatureCNN":
        return FeatureCNN(self.shape, self.widths)

    def load(self) -> "FeatureCNN":
        """The network with its pinned weights (WeightsError: the file is missing or its sha256 differs)."""
        from safetensors.torch import load_file

        check_sha256(self.weights, self.sha256, what=f"feature network {self.name!r}")
        net = self.build()
        net.load_state_dict(load_file(str(self.weights)))
        return net.eval().requires_grad_(False)


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_sha256(path: str | Path, expected: str, *, what: str) -> None:
    """Refuse a missing file or one whose sha256 is not ``expected``, naming both."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what}: weights file {path} is missing (train it: python tools/train_features.py)")
    got = sha256_of(path)
    if got != expected:
        raise WeightsError(f"{what}: {path} has sha256 {got}, expected {expected} (the pinned file was "
                           f"changed or damaged; retrain with python tools/train_features.py and update the pin)")


class FeatureCNN(nn.Module):
    """conv3x3-ReLU blocks (with 2x2 max-pooling between them down to <= 8x8), global average pooling
    (the features, ``widths[-1]`` of them) and a linear classifier over the 10 digit classes."""

    def __init__(self, shape: tuple[int, int, int], widths: tuple[int, int, int] = (16, 32, 64), classes: int = 10):
        super().__init__()
        c, h, _ = shape
        layers: list[nn.Module] = []
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU()]
            c = w
            if h > 8 and i < len(widths) - 1:  # 28 -> 14 -> 7; 8x8 stays 8x8 until the pool
                layers.append(nn.MaxPool2d(2))
                h //= 2
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c, classes)

    def features(self, x: Tensor) -> Tensor:
        """Images in [0, 1] ``[B, C, H, W]`` -> features ``[B, widths[-1]]``."""
        return self.body(x).mean((2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def feature_network(name: str) -> FeatureNetwork:
    """The registered feature network ``name`` (UsageError listing the known ones)."""
    from zoo.errors import UsageError
    from zoo.registry import get_registry

    entry = get_registry().find("features", name)
    if entry is None:
        known = sorted(e.name for e in get_registry().all("features"))
        raise UsageError(f"no feature network {name!r}; registered: {known} (or 'inception')")
    return entry.resolve()


def feature_network_for(data: str) -> FeatureNetwork | None:
    """The registered feature network trained on data set ``data`` (e.g. ``zoo:digits``), if any."""
    from zoo.registry import get_registry

    for entry in get_registry().all("features"):
        net = entry.resolve()
        if net.data == data:
            return net
    return None

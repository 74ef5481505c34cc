"""The feature networks of the embedded data sets (``zoo evaluate``'s FID/KID/precision-recall features).

Made by ``python tools/train_features.py`` (seed 0, the embedded training split only); the sha256 pins
the shipped file, checked before it is loaded."""
from __future__ import annotations

from pathlib import Path

from zoo.quality.features import FeatureNetwork

_WEIGHTS = Path(__file__).resolve().parent / "weights"

DIGITS = FeatureNetwork(
    name="digits-cnn", data="zoo:digits", shape=(1, 8, 8), weights=_WEIGHTS / "digits-features.safetensors",
    sha256="949f27e988486dfc031096bb43e81c12ee350e8ee2073e790aab0b708a4ec566",
    recipe="python tools/train_features.py --data zoo:digits (60 epochs; test accuracy 0.953)")
MNIST_5K = FeatureNetwork(
    name="mnist-5k-cnn", data="zoo:mnist-5k", shape=(1, 28, 28), weights=_WEIGHTS / "mnist-5k-features.safetensors",
    sha256="d790d1e2c9e5efd0450b8308782b6ff3c3c04870bb6837b4705177b50684bd0b",
    recipe="python tools/train_features.py --data zoo:mnist-5k (15 epochs; test accuracy 0.932)")

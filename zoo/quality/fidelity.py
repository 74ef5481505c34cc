"""FID, KID and precision/recall between two sets of images, computed by torch-fidelity (offline).

Features: a registered :class:`~zoo.quality.features.FeatureNetwork` (the embedded data sets' small
CNNs, wrapped as a torch-fidelity feature extractor) or Inception-v3 from a local weights file
(``--inception-weights PATH`` or ``$ZOO_INCEPTION_WEIGHTS``; never downloaded here).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from zoo.errors import UsageError, WeightsError
from zoo.quality.features import FeatureNetwork, sha256_of

INCEPTION_ENV = "ZOO_INCEPTION_WEIGHTS"
# torch-fidelity's own release asset (torch_fidelity.feature_extractor_inceptionv3.URL_INCEPTION_V3)
INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth")
METRICS = ("fid", "kid", "prc")


def _fidelity():
    try:
        import torch_fidelity
    except ImportError:
        raise UsageError("sample-quality metrics need torch-fidelity: pip install 'latent-zoo[eval]'") from None
    return torch_fidelity


def inception_weights(path: str | Path | None = None) -> Path:
    """The Inception-v3 weights file: ``path``, else ``$ZOO_INCEPTION_WEIGHTS``; a missing one is a
    WeightsError naming the path and where to get the file."""
    given = path if path is not None else os.environ.get(INCEPTION_ENV)
    where = (f"download {INCEPTION_URL} (torch-fidelity's release asset, not on the package index) and pass "
             f"--inception-weights PATH or set {INCEPTION_ENV}=PATH")
    if not given:
        raise WeightsError(f"Inception features need a local weights file: {where}")
    p = Path(given).expanduser()
    if not p.is_file():
        raise WeightsError(f"Inception weights file {p} does not exist: {where}")
    return p


class _Images(torch.utils.data.Dataset):
    """uint8 images ``[N, C, H, W]`` as torch-fidelity reads them (one uint8 ``[C, H, W]`` per item)."""

    def __init__(self, images: Tensor, rgb: bool = False):
        self.images = images.expand(-1, 3, -1, -1) if rgb and images.shape[1] == 1 else images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Tensor:
        return self.images[i].contiguous()


def _extractor_for(net: FeatureNetwork) -> str:
    """Register ``net`` with torch-fidelity (once) and return the extractor's name there."""
    tf = _fidelity()
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    name = f"zoo-{net.name}"
    if name in FEATURE_EXTRACTORS_REGISTRY:
        return name
    module = net.load()  # sha256-checked before torch-fidelity sees it

    class Extractor(FeatureExtractorBase):
        def __init__(self, name, features_list, **kwargs):
            super().__init__(name, features_list)
            self.net = module

        @staticmethod
        def get_provided_features_list():
            return ("pool", "logits")

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return "pool"

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return torch.zeros(1, *net.shape, dtype=torch.uint8)

        def forward(self, x):
            x = x.float() / 255.0
            pool = self.net.features(x)
            out = {"pool": pool, "logits": self.net.head(pool)}
            return tuple(out[k] for k in self.features_list)

    tf.register_feature_extractor(name, Extractor)
    return name


def to_uint8(images: Tensor) -> Tensor:
    """Images in [0, 1] -> uint8 0..255 (rounded)."""
    return images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()


def fidelity_metrics(generated: Tensor, reference: Tensor, *, features: FeatureNetwork | str,
                     metrics: tuple[str, ...] = METRICS, inception_path: str | Path | None = None,
                     prc_neighborhood: int = 3, seed: int = 2020) -> dict[str, Any]:
    """FID / KID / precision-recall of ``generated`` against ``reference`` (uint8 ``[N, C, H, W]``).

    ``features``: a FeatureNetwork or ``"inception"``.  Every number comes back with the features
    that made it (``features``, ``features_sha256``).  KID averages subsets of min(1000, N/2) images (their
    std is ``kid_std``)."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise UsageError(f"--metrics: unknown {unknown}; choose from {list(METRICS)}")
    tf = _fidelity()
    if generated.dtype != torch.uint8 or reference.dtype != torch.uint8:
        raise UsageError("fidelity_metrics takes uint8 images (to_uint8 converts images in [0, 1])")
    kwargs: dict[str, Any] = {}
    if features == "inception":
        from zoo.quality.inception import register_inception, verify_inception

        weights = inception_weights(inception_path)
        sha = verify_inception(weights)  # the published file, checked before anything reads it
        name, rgb = register_inception(weights), True  # read as tensors only; torch-fidelity never opens it
        described = {"features": "inception-v3-compat pool3 (2048-d, torch-fidelity)",
                     "features_sha256": sha, "features_file": str(weights)}
    elif isinstance(features, FeatureNetwork):
        for images in (generated, reference):  # a network for other images would give a number that means nothing
            if tuple(images.shape[1:]) != tuple(features.shape):
                raise UsageError(f"--features {features.name}: a network for images of shape {list(features.shape)} "
                                 f"({features.data}), but these images have shape {list(images.shape[1:])}; choose "
                                 f"the feature network of their data set, or 'inception'")
        name, rgb = _extractor_for(features), False
        described = {"features": f"{features.name}: {features.dims}-d pooled conv features of a digit "
                                 f"classifier trained on {features.data} [train] (zoo.quality.features)",
                     "features_sha256": features.sha256}
    else:
        raise UsageError(f"--features: expected a feature network or 'inception', got {features!r}")
    n = min(len(generated), len(reference))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        raw = tf.calculate_metrics(
            input1=_Images(generated, rgb), input2=_Images(reference, rgb), cuda=False, batch_size=256,
            feature_extractor=name, fid="fid" in metrics, kid="kid" in metrics, prc="prc" in metrics,
            kid_subset_size=max(2, min(1000, n // 2)), prc_neighborhood=prc_neighborhood, cache=False,
            save_cpu_ram=True, verbose=False, rng_seed=seed, **kwargs)
    out: dict[str, Any] = {}
    keys = {"frechet_inception_distance": "fid", "kernel_inception_distance_mean": "kid",
            "kernel_inception_distance_std": "kid_std", "precision": "precision", "recall": "recall"}
    for key, short in keys.items():
        if key in raw:
            out[short] = float(raw[key])
    import torch_fidelity as t

    out.update(described)
    out.update({"n_generated": len(generated), "n_reference": len(reference),
                "metrics_by": f"torch-fidelity {getattr(t, '__version__', '?')}", "prc_neighborhood": prc_neighborhood})
    return out

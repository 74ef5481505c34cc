"""Any timm backbone as an encoder q(z|x): ``timm.create_model(model, ...)`` + a Gaussian head.

Card arguments (``encoder: {name: timm, ...}``):
  model        any ``timm.create_model`` name (``timm.list_models()``), e.g. resnet18, convnext_atto
  pretrained   false (default) or true: timm's own pretrained-weight loading (the Hugging Face
               Hub by default; ``pretrained_file`` points it at a local file instead, offline)
  features     "pooled" (default): the backbone's globally pooled features (``num_classes=0``);
               "features_only": one feature map of ``timm``'s ``features_only`` mode
               (``out_index``, default the last), then ``pool``: "avg" (default) or "flatten"
  normalize    feed the backbone images normalised with its pretrained mean/std (default: when
               ``pretrained``); the images are recovered from the likelihood's data space
  kwargs       extra ``timm.create_model`` keyword arguments (e.g. drop_path_rate)

Grey-scale data work too: timm adapts the first convolution to ``in_chans`` (summing the
pretrained RGB filters when weights are loaded).
"""
from __future__ import annotations

import copy
import weakref
from typing import Any

import torch
from torch import Tensor, nn

from zoo.distributions import DiagGaussian

from .encoders import GaussianHead


class TimmEncoder(nn.Module):
    """timm backbone -> features -> diagonal-Gaussian head over ``latent_shape``."""

    test_args = {"model": "test_resnet"}  # a tiny timm test network for the conformance kit

    def __init__(self, *, data_shape, latent_shape, model: str = "resnet18", pretrained: bool = False,
                 pretrained_file: str | None = None, features: str = "pooled", out_index: int = -1,
                 pool: str = "avg", normalize: bool | None = None, kwargs: dict[str, Any] | None = None):
        super().__init__()
        import timm

        if features not in ("pooled", "features_only"):
            raise ValueError(f"timm encoder: features must be 'pooled' or 'features_only', got {features!r}")
        if pool not in ("avg", "flatten"):
            raise ValueError(f"timm encoder: pool must be 'avg' or 'flatten', got {pool!r}")
        if not timm.is_model(model):
            raise ValueError(f"timm encoder: unknown timm model {model!r} (see timm.list_models())")
        c, h, w = data_shape
        args: dict[str, Any] = dict(kwargs or {})
        args["in_chans"] = c
        if pretrained_file is not None:
            args["pretrained_cfg_overlay"] = {"file": str(pretrained_file)}
        if features == "pooled":
            args["num_classes"] = 0
        else:
            args.update(features_only=True, out_indices=(out_index,))
        self.backbone = timm.create_model(model, pretrained=bool(pretrained), **args)
        self.features, self.pool = features, pool
        self.model_name = model
        cfg = getattr(self.backbone, "pretrained_cfg", None) or {}
        mean, std = cfg.get("mean", (0.5,) * 3), cfg.get("std", (0.5,) * 3)
        mean = _channels(mean, c)
        std = _channels(std, c)
        self.register_buffer("norm_mean", torch.tensor(mean).view(1, c, 1, 1), persistent=False)
        self.register_buffer("norm_std", torch.tensor(std).view(1, c, 1, 1), persistent=False)
        self.normalize = bool(pretrained) if normalize is None else bool(normalize)
        self._to_unit = None
        self.head = GaussianHead(self._feature_count(data_shape), latent_shape)

    @torch.no_grad()
    def _feature_count(self, data_shape) -> int:
        """The width of the backbone's features for an image of ``data_shape`` (a probe forward pass; on the meta
        device when the model is built without weights, ``build_model(card, empty=True)``)."""
        backbone = self.backbone
        device = next(backbone.parameters()).device
        if device.type == "meta":  # the buffers (batch-norm statistics) are real: move a copy wholly to meta
            backbone = copy.deepcopy(backbone).to("meta")
        was = backbone.training
        backbone.eval()
        n = self._pool(backbone(torch.zeros(2, *data_shape, device=device))).shape[1]
        backbone.train(was)
        return int(n)

    def bind(self, model) -> None:
        """Remember how to turn the likelihood's data space back into images in [0, 1]."""
        object.__setattr__(self, "_to_unit", weakref.ref(model.decoder.likelihood))

    def _features(self, x: Tensor) -> Tensor:
        if self.normalize:
            lik = self._to_unit() if self._to_unit is not None else None
            x01 = lik.to_unit(x) if lik is not None else x
            x = (x01 - self.norm_mean.to(x01.dtype)) / self.norm_std.to(x01.dtype)
        return self._pool(self.backbone(x))

    def _pool(self, out) -> Tensor:
        if self.features == "pooled":
            return out.flatten(1)
        fmap = out[0]
        return fmap.mean((2, 3)) if self.pool == "avg" else fmap.flatten(1)

    def forward(self, x: Tensor) -> DiagGaussian:
        return self.head(self._features(x))


def _channels(values, c: int) -> list[float]:
    values = [float(v) for v in values]
    if len(values) == c:
        return values
    return [sum(values) / len(values)] * c

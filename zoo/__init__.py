"""latent-zoo: latent-variable generative models as prior + decoder + encoder, with the ELBO split.

    import zoo
    zoo.list_models("vae-*")
    model = zoo.load("vae-mnist")        # its packaged weights (pretrained=False: freshly initialised)
    out = model(x)                       # ModelOutput: per-sample elbo, distortion, rate (nats), q(z|x), z, p(x|z)
    report = zoo.diagnose(model, "zoo:mnist-5k")

Heavy modules (torch, datasets, huggingface_hub) are imported on first use, so ``import zoo``
stays fast.  ``zoo.LatentModel`` is taken from the loader (zoo.loading), which provides its
``from_pretrained`` / ``save_pretrained`` / ``push_to_hub`` (the model module knows no files).
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from zoo.hookspecs import hookimpl

__version__ = "0.1.0"

_LAZY = {
    "list_models": "cards.listing", "get_card": "cards.catalog",
    "load": "loading", "build": "loading",
    "diagnose": "diagnostics", "format_report": "diagnostics",
    "train": "training",
    "LatentModel": "loading", "ELBO": "model", "ModelOutput": "outputs", "ImageObservation": "outputs",
    "Card": "cards", "read_card": "cards",
    "get_registry": "registry",
    "ZooError": "errors",
}

__all__ = ["hookimpl", "__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from zoo.cards import Card, read_card
    from zoo.cards.catalog import get_card
    from zoo.cards.listing import list_models
    from zoo.diagnostics import diagnose, format_report
    from zoo.errors import ZooError
    from zoo.loading import build, load
    from zoo.loading import LatentModel
    from zoo.model import ELBO
    from zoo.outputs import ImageObservation, ModelOutput
    from zoo.registry import get_registry
    from zoo.training.loop import train


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")

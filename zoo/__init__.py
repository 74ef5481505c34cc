"""latent-zoo: latent-variable generative models as prior + decoder + encoder, with the ELBO split.

    import zoo
    zoo.list_models("vae-*")
    model = zoo.load("vae-mnist", pretrained=False)
    terms = model.elbo(x)                # per-sample elbo, distortion, rate (nats)
    report = zoo.diagnose(model, "zoo:mnist-5k")

Heavy modules (torch, datasets, huggingface_hub) are imported on first use, so ``import zoo``
stays fast.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from .hookspecs import hookimpl

__version__ = "0.1.0"

_LAZY = {
    "list_models": "catalog", "get_card": "catalog",
    "load": "loading", "build": "loading",
    "diagnose": "diagnostics", "format_report": "diagnostics",
    "train": "trainer",
    "LatentModel": "model", "ELBO": "model",
    "Card": "cards", "read_card": "cards",
    "get_registry": "registry",
    "ZooError": "errors",
}

__all__ = ["hookimpl", "__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from .cards import Card, read_card
    from .catalog import get_card, list_models
    from .diagnostics import diagnose, format_report
    from .errors import ZooError
    from .loading import build, load
    from .model import ELBO, LatentModel
    from .registry import get_registry
    from .trainer import train


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")

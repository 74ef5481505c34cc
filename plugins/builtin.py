"""The built-in plugin: registered through the ``zoo`` entry-point group like any third-party one."""
from __future__ import annotations

from pathlib import Path

from zoo.hookspecs import hookimpl

from .decoders import ConvDecoder, MLPDecoder
from .encoders import ConvEncoder, MLPEncoder
from .priors import MixtureOfGaussians, StandardNormal


@hookimpl
def register_encoders(register):
    register("mlp", MLPEncoder)
    register("conv", ConvEncoder)


@hookimpl
def register_decoders(register):
    register("mlp", MLPDecoder)
    register("conv", ConvDecoder)


@hookimpl
def register_priors(register):
    register("standard-normal", StandardNormal)
    register("mixture-of-gaussians", MixtureOfGaussians)


@hookimpl
def register_cards(register):
    register(cards_folder())


def cards_folder() -> Path:
    """The built-in cards: ``zoo_plugins/cards`` when installed, ``cards/`` beside ``plugins/`` in a checkout."""
    here = Path(__file__).resolve().parent
    installed = here / "cards"
    return installed if installed.is_dir() else here.parent / "cards"

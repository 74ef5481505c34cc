"""The built-in plugin: registered through the ``zoo`` entry-point group like any third-party one."""
from __future__ import annotations

from pathlib import Path

from zoo.hookspecs import hookimpl

from .decoders import ConvDecoder, MLPDecoder
from .diffusion.ddpm import DDPMDecoder, DDPMPrior, NoisingEncoder
from .encoders import ConvEncoder, MLPEncoder
from .flows import RealNVPPrior
from .gmm import CategoricalPrior, GMMDecoder, GMMPosterior
from .hierarchical import LadderEncoder, LadderPrior
from .priors import MixtureOfGaussians, StandardNormal
from .timm_encoder import TimmEncoder  # imports timm only when a card asks for it
from .vampprior import VampPrior


@hookimpl
def register_encoders(register):
    register("mlp", MLPEncoder)
    register("conv", ConvEncoder)
    register("gmm-posterior", GMMPosterior)
    register("ladder", LadderEncoder)
    register("timm", TimmEncoder)
    register("ddpm-noising", NoisingEncoder)


@hookimpl
def register_decoders(register):
    register("mlp", MLPDecoder)
    register("conv", ConvDecoder)
    register("gmm", GMMDecoder)
    register("ddpm-decoder", DDPMDecoder)


@hookimpl
def register_priors(register):
    register("standard-normal", StandardNormal)
    register("mixture-of-gaussians", MixtureOfGaussians)
    register("categorical", CategoricalPrior)
    register("vampprior", VampPrior)
    register("realnvp", RealNVPPrior)
    register("ladder", LadderPrior)
    register("ddpm", DDPMPrior)


@hookimpl
def register_cards(register):
    register(cards_folder())


def cards_folder() -> Path:
    """The built-in cards: ``zoo_plugins/cards`` when installed, ``cards/`` beside ``plugins/`` in a checkout."""
    here = Path(__file__).resolve().parent
    installed = here / "cards"
    return installed if installed.is_dir() else here.parent / "cards"

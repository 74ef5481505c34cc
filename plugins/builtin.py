"""The built-in plugin: registered through the ``zoo`` entry-point group like any third-party one.

Everything is registered as ``"module:attribute"``: imported when first used, so ``zoo list``
imports no torch.
"""
from __future__ import annotations

from pathlib import Path

from zoo.hookspecs import hookimpl


@hookimpl
def register_encoders(register):
    register("mlp", "zoo_plugins.basic.encoders:MLPEncoder")
    register("conv", "zoo_plugins.basic.encoders:ConvEncoder")
    register("gmm-posterior", "zoo_plugins.mixtures.gmm:GMMPosterior")
    register("ladder", "zoo_plugins.hierarchy.hierarchical:LadderEncoder")
    register("timm", "zoo_plugins.basic.timm_encoder:TimmEncoder")
    register("ddpm-noising", "zoo_plugins.diffusion.ddpm:NoisingEncoder")
    register("vdm-noising", "zoo_plugins.diffusion.vdm:VDMNoisingEncoder")
    register("flow", "zoo_plugins.normalizing_flows.flow_posterior:FlowEncoder")
    register("vq", "zoo_plugins.discrete.vq:VQEncoder")
    register("gumbel", "zoo_plugins.discrete.gumbel:GumbelEncoder")
    register("vmf", "zoo_plugins.sphere.spherical:VMFEncoder")
    register("autoencoder-kl", "zoo_plugins.autoencoders.kl:AutoencoderKLEncoder")
    register("vqmodel", "zoo_plugins.autoencoders.vq:VQEncoder")


@hookimpl
def register_decoders(register):
    register("mlp", "zoo_plugins.basic.decoders:MLPDecoder")
    register("conv", "zoo_plugins.basic.decoders:ConvDecoder")
    register("gmm", "zoo_plugins.mixtures.gmm:GMMDecoder")
    register("ddpm-decoder", "zoo_plugins.diffusion.ddpm:DDPMDecoder")
    register("vdm-decoder", "zoo_plugins.diffusion.vdm:VDMDecoder")
    register("vq", "zoo_plugins.discrete.vq:VQDecoder")
    register("autoencoder-kl", "zoo_plugins.autoencoders.kl:AutoencoderKLDecoder")
    register("vqmodel", "zoo_plugins.autoencoders.vq:VQDecoder")


@hookimpl
def register_priors(register):
    register("standard-normal", "zoo_plugins.basic.priors:StandardNormal")
    register("mixture-of-gaussians", "zoo_plugins.basic.priors:MixtureOfGaussians")
    register("categorical", "zoo_plugins.mixtures.gmm:CategoricalPrior")
    register("vampprior", "zoo_plugins.mixtures.vampprior:VampPrior")
    register("realnvp", "zoo_plugins.normalizing_flows.flows:RealNVPPrior")
    register("maf", "zoo_plugins.normalizing_flows.maf:MAFPrior")
    register("categorical-codes", "zoo_plugins.discrete.codes_prior:CategoricalCodes")
    register("autoregressive-codes", "zoo_plugins.discrete.codes_prior:AutoregressiveCodes")
    register("hyperspherical-uniform", "zoo_plugins.sphere.spherical:HypersphericalUniform")
    register("ladder", "zoo_plugins.hierarchy.hierarchical:LadderPrior")
    register("ddpm", "zoo_plugins.diffusion.ddpm:DDPMPrior")
    register("vdm", "zoo_plugins.diffusion.vdm:VDMPrior")
    register("two-stage-vae", "zoo_plugins.post_hoc.second_stage:SecondStageVAEPrior")


@hookimpl
def register_likelihoods(register):
    register("bernoulli", "zoo.likelihoods:Bernoulli")
    register("gaussian", "zoo.likelihoods:Gaussian")
    register("discretized-logistic", "zoo.likelihoods:DiscretizedLogistic")
    register("categorical", "zoo_plugins.basic.categorical:Categorical")
    register("discretized-gaussian", "zoo_plugins.diffusion.ddpm:DiscretizedGaussian")
    register("fixed-discretized-gaussian", "zoo_plugins.autoencoders.likelihoods:FixedScaleDiscretizedGaussian")
    register("fixed-discretized-logistic", "zoo_plugins.autoencoders.likelihoods:FixedScaleDiscretizedLogistic")


@hookimpl
def register_converters(register):
    register("diffusers-unet", "zoo_plugins.diffusion.convert:diffusers_ddpm_to_zoo")
    register("diffusers-autoencoder-kl", "zoo_plugins.autoencoders.convert:diffusers_autoencoder_kl_to_zoo")
    register("diffusers-vqmodel", "zoo_plugins.autoencoders.convert:diffusers_vqmodel_to_zoo")
    register("diffusers-ldm", "zoo_plugins.autoencoders.convert:diffusers_ldm_to_zoo")


@hookimpl
def register_fitters(register):
    register("em", "zoo_plugins.mixtures.gmm:fit_em_from_data")


@hookimpl
def register_prior_fitters(register):
    register("gmm", "zoo_plugins.post_hoc.fitters:GMM")
    register("maf", "zoo_plugins.post_hoc.fitters:MAF")
    register("vae", "zoo_plugins.post_hoc.fitters:VAE")


@hookimpl
def register_samplers(register):
    register("ddim", "zoo_plugins.diffusion.ddpm:DDIM")
    register("vdm", "zoo_plugins.diffusion.vdm:VDM_SAMPLER")


@hookimpl
def register_objectives(register):
    register("beta-tcvae", "zoo_plugins.objectives.disentangle:BetaTCVAE")
    register("factorvae", "zoo_plugins.objectives.disentangle:FactorVAE")
    register("dip-vae-i", "zoo_plugins.objectives.disentangle:dip_vae_i")
    register("dip-vae-ii", "zoo_plugins.objectives.disentangle:dip_vae_ii")
    register("miwae", "zoo_plugins.objectives.iwae:MIWAE")
    register("ciwae", "zoo_plugins.objectives.iwae:CIWAE")
    register("piwae", "zoo_plugins.objectives.iwae:PIWAE")


@hookimpl
def register_data_sources(register):
    register("mnist-5k", "zoo_plugins.data.datasets:MNIST_5K")
    register("digits", "zoo_plugins.data.datasets:DIGITS")
    register("shapes", "zoo_plugins.data.shapes:SHAPES_32")
    register("shapes-64", "zoo_plugins.data.shapes:SHAPES_64")


@hookimpl
def register_cards(register):
    register(cards_folder())


def cards_folder() -> Path:
    """The built-in cards: ``zoo_plugins/cards`` when installed, ``cards/`` beside ``plugins/`` in a checkout."""
    here = Path(__file__).resolve().parent
    installed = here / "cards"
    return installed if installed.is_dir() else here.parent / "cards"


@hookimpl
def register_feature_networks(register):
    register("digits-cnn", "zoo_plugins.data.feature_nets:DIGITS")
    register("mnist-5k-cnn", "zoo_plugins.data.feature_nets:MNIST_5K")

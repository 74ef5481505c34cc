"""Diffusion building blocks: the DDPM UNet, the noise schedule / variational bound, samplers
and the diffusers checkpoint converter.  Pure modules; the plugin wiring lives elsewhere."""
from .convert import config_from_diffusers, diffusers_unet_to_zoo, load_diffusers_unet
from .sampling import ddim_sample, ddim_step, ddpm_sample
from .schedule import (
    BoundTerms,
    NoiseSchedule,
    bits_per_dim,
    cosine_betas,
    ddim_timesteps,
    linear_betas,
    variational_bound,
)
from .unet import UNet, UNetConfig

__all__ = [
    "UNet", "UNetConfig", "NoiseSchedule", "linear_betas", "cosine_betas", "ddim_timesteps",
    "variational_bound", "BoundTerms", "bits_per_dim", "ddpm_sample", "ddim_sample", "ddim_step",
    "diffusers_unet_to_zoo", "config_from_diffusers", "load_diffusers_unet",
]

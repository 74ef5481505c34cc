"""Diffusion building blocks: the DDPM UNet, the noise schedule / variational bound, samplers
and the diffusers checkpoint converter; :mod:`.ddpm` wires them into the zoo's triple (prior
``ddpm``, encoder ``ddpm-noising``, decoder ``ddpm-decoder``) and :func:`sample` draws images
(ancestral or DDIM) from any model with a ddpm prior."""
from zoo.plots import plot_series as plot_bound_curve  # the per-step curve L_t (a declared series)

from .convert import (
    config_from_diffusers,
    diffusers_ddpm_to_zoo,
    diffusers_unet_to_zoo,
    load_diffusers_unet,
)
from .ddpm import DDPMDecoder, DDPMPrior, NoisingEncoder, NoisingPosterior, sample
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
    "diffusers_unet_to_zoo", "config_from_diffusers", "load_diffusers_unet", "diffusers_ddpm_to_zoo",
    "DDPMPrior", "NoisingEncoder", "NoisingPosterior", "DDPMDecoder", "sample", "plot_bound_curve",
]


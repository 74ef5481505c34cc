"""The KL-regularised autoencoder of latent diffusion (Rombach et al. 2022, sec. 3 and app. G; the
Stable Diffusion VAEs) as the zoo's encoder ``autoencoder-kl`` and decoder ``autoencoder-kl``.

    encoder  q(z|x) = N(mu(x), diag sigma(x)^2),  [mu, log sigma^2] = quant_conv(E(x)),
             log sigma^2 clamped to [-30, 20] (as diffusers' DiagonalGaussianDistribution)
    decoder  mu_x(z) = D(post_quant_conv(z)),  p(x|z) the stated likelihood around mu_x
             (``fixed-discretized-gaussian`` by default; see :mod:`.likelihoods`)

E and D are :mod:`.backbone`'s networks.  The zoo latent is z = ``scaling_factor`` * (the
autoencoder's latent): the encoder multiplies its mean and standard deviation by it and the decoder
divides by it first, so with ``scaling_factor: 1`` (the SD VAE cards) z is the latent the
autoencoder was trained on, whose KL term was taken against N(0, I), and with the published 0.18215
/ 0.13025 z is the unit-variance latent the Stable Diffusion UNets model.
"""
from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from zoo.distributions import DiagGaussian
from zoo.errors import ShapeError
from zoo.contracts import Observation
from zoo.likelihoods import make_likelihood

from .backbone import CoderConfig, DecoderNet, EncoderNet

__all__ = ["AutoencoderKLEncoder", "AutoencoderKLDecoder", "LOGVAR_RANGE", "check_shapes"]

LOGVAR_RANGE = (-30.0, 20.0)
DEFAULT_LIKELIHOOD = {"name": "fixed-discretized-gaussian", "scale": 0.05}


def check_shapes(kind: str, cfg: CoderConfig, data_shape, latent_shape, latent_channels: int) -> None:
    """The card's data / latent shapes must be what this architecture maps between."""
    c, h, w = (int(v) for v in data_shape)
    f = cfg.downsampling
    if h % f or w % f:
        raise ShapeError(f"{kind}: the image size {h}x{w} must be a multiple of {f} "
                         f"(2^(levels - 1) for block_out_channels {list(cfg.block_out_channels)})")
    want = (latent_channels, h // f, w // f)
    if tuple(int(v) for v in latent_shape) != want:
        raise ShapeError(f"{kind}: images of shape {[c, h, w]} give latents of shape {list(want)} "
                         f"({latent_channels} channels, {f}x downsampling), but the card's latent.shape is "
                         f"{list(latent_shape)}")


def _scale(value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"scaling_factor must be a positive number, got {value!r}")
    return float(value)


class AutoencoderKLEncoder(nn.Module):
    """Card ``encoder: {name: autoencoder-kl, block_out_channels, layers_per_block, norm_num_groups,
    mid_attention, use_quant_conv, scaling_factor, chunk, channels_last}``; latent channels from latent.shape."""

    posterior_type = DiagGaussian
    family = "vae"
    # the conformance kit (zoo.testing): a 2-level network, 2x downsampling of an 8x8 RGB image
    test_shapes = {"latent_shape": (4, 4, 4), "data_shape": (3, 8, 8)}
    test_args = {"block_out_channels": [16, 32], "layers_per_block": 1, "norm_num_groups": 8}
    zoo_test_components = {"decoder": {"name": "autoencoder-kl", **test_args}}

    def __init__(self, *, data_shape, latent_shape, block_out_channels=(128, 256, 512, 512), layers_per_block: int = 2,
                 norm_num_groups: int = 32, mid_attention: bool = True, use_quant_conv: bool = True,
                 scaling_factor: float = 1.0, chunk: int = 4, channels_last: bool = False):
        super().__init__()
        self.cfg = CoderConfig.from_args(dict(block_out_channels=block_out_channels, layers_per_block=layers_per_block,
                                              norm_num_groups=norm_num_groups, mid_attention=mid_attention,
                                              chunk=chunk, channels_last=channels_last))
        self.latent_channels = int(latent_shape[0])
        check_shapes("autoencoder-kl encoder", self.cfg, data_shape, latent_shape, self.latent_channels)
        self.scaling_factor = _scale(scaling_factor)
        self.net = EncoderNet(self.cfg, int(data_shape[0]), 2 * self.latent_channels)
        self.quant_conv = nn.Conv2d(2 * self.latent_channels, 2 * self.latent_channels, 1) if use_quant_conv else None

    def moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, log-variance) of the autoencoder's own (unscaled) latent, log-variance clamped."""
        h = self.net(x)
        if self.quant_conv is not None:
            h = self.quant_conv(h)
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def forward(self, x: Tensor) -> DiagGaussian:
        """q(z|x) for x in [-1, 1]: z = s * u, u ~ N(mean, exp(logvar)), s = scaling_factor."""
        mean, logvar = self.moments(x)
        s = self.scaling_factor
        return DiagGaussian(mean * s, 0.5 * logvar + math.log(s))


class AutoencoderKLDecoder(nn.Module):
    """Card ``decoder: {name: autoencoder-kl, ..., use_post_quant_conv, scaling_factor, fast_upsample, channels_last,
    likelihood}``."""

    # the conformance kit (zoo.testing): a 2-level network, 2x downsampling of an 8x8 RGB image
    test_shapes = {"latent_shape": (4, 4, 4), "data_shape": (3, 8, 8)}
    test_args = {"block_out_channels": [16, 32], "layers_per_block": 1, "norm_num_groups": 8}
    zoo_test_components = {"encoder": {"name": "autoencoder-kl", **test_args}}

    def __init__(self, *, data_shape, latent_shape, block_out_channels=(128, 256, 512, 512), layers_per_block: int = 2,
                 norm_num_groups: int = 32, mid_attention: bool = True, use_post_quant_conv: bool = True,
                 scaling_factor: float = 1.0, chunk: int = 4, fast_upsample: bool = False,
                 channels_last: bool = False, likelihood: str | dict = DEFAULT_LIKELIHOOD):
        super().__init__()
        self.cfg = CoderConfig.from_args(dict(block_out_channels=block_out_channels, layers_per_block=layers_per_block,
                                              norm_num_groups=norm_num_groups, mid_attention=mid_attention,
                                              chunk=chunk, fast_upsample=fast_upsample,
                                              channels_last=channels_last))
        self.latent_channels = int(latent_shape[0])
        check_shapes("autoencoder-kl decoder", self.cfg, data_shape, latent_shape, self.latent_channels)
        self.scaling_factor = _scale(scaling_factor)
        self.likelihood = make_likelihood(likelihood)
        if self.likelihood.params_per_dim != 1:
            raise ValueError(f"the decoder outputs one image (one map per channel), so its likelihood must take one "
                             f"parameter per dimension; {self.likelihood.name!r} takes {self.likelihood.params_per_dim}")
        self.post_quant_conv = (nn.Conv2d(self.latent_channels, self.latent_channels, 1)
                                if use_post_quant_conv else None)
        self.net = DecoderNet(self.cfg, self.latent_channels, int(data_shape[0]))

    def image(self, z: Tensor) -> Tensor:
        """The decoder's output mu_x(z) in [-1, 1] data units (diffusers' ``decode(z / s).sample``)."""
        u = z / self.scaling_factor
        if self.post_quant_conv is not None:
            u = self.post_quant_conv(u)
        return self.net(u)

    def forward(self, z: Tensor) -> Observation:
        return self.likelihood(self.image(z))

"""The vector-quantised autoencoder of latent diffusion (VQ-regularised first stage, Rombach et al.
2022 sec. 3; the VQGAN of Esser et al. 2021) as the zoo's encoder ``vqmodel`` and decoder ``vqmodel``.

    encoder  h(x) = quant_conv(E(x))                     (continuous, before quantisation)
             q(z|x) = N(s * h(x), sigma_q^2 I)           (sigma_q = ``posterior_std``, stated by the card)
    decoder  z_q = e_k,  k = argmin_j ||z / s - e_j||    (per latent position; codebook e_1..e_K)
             mu_x(z) = D(post_quant_conv(z_q)),  p(x|z) the stated likelihood around mu_x

This is how the latent diffusion models use a VQ first stage: the diffusion model is trained on,
and samples, the *continuous* h, and decoding quantises it first (diffusers' ``VQModel.decode``,
which ``LDMPipeline`` calls on its DDIM output divided by the scaling factor s).

The VQ encoder is deterministic; an ELBO needs a posterior with finite entropy, so the card states
a small isotropic Gaussian around h.  Any z within the Voronoi cell of a code decodes to the same
image, so a sigma_q well inside the cells leaves the distortion unchanged; the rate
E_q log q(z|x) + L(z) (with the diffusion prior's bound L) does depend on it, and the card says so.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo.distributions import DiagGaussian
from zoo.contracts import Observation
from zoo.likelihoods import make_likelihood

from .backbone import CoderConfig, DecoderNet, EncoderNet
from .kl import DEFAULT_LIKELIHOOD, _scale, check_shapes

__all__ = ["VectorQuantizer", "VQEncoder", "VQDecoder"]


class VectorQuantizer(nn.Module):
    """Nearest-codebook lookup over the channel dimension: [B, D, H, W] -> [B, D, H, W] (and the indices)."""

    def __init__(self, num_embeddings: int, dim: int):
        super().__init__()
        if num_embeddings < 1 or dim < 1:
            raise ValueError(f"a codebook needs num_embeddings >= 1 and dim >= 1, got {num_embeddings}, {dim}")
        self.embedding = nn.Embedding(num_embeddings, dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / num_embeddings, 1.0 / num_embeddings)

    def indices(self, h: Tensor) -> Tensor:
        """argmin_j ||h_p - e_j|| for every position p, long ``[B, H, W]`` (Euclidean, as torch.cdist)."""
        b, d, hh, ww = h.shape
        flat = h.permute(0, 2, 3, 1).reshape(-1, d)
        idx = torch.argmin(torch.cdist(flat, self.embedding.weight), dim=1)
        return idx.view(b, hh, ww)

    def lookup(self, idx: Tensor) -> Tensor:
        """Codes ``[B, H, W]`` -> their vectors ``[B, D, H, W]``."""
        return self.embedding(idx).permute(0, 3, 1, 2).contiguous()

    def forward(self, h: Tensor) -> Tensor:
        return self.lookup(self.indices(h))


class VQEncoder(nn.Module):
    """Card ``encoder: {name: vqmodel, block_out_channels, layers_per_block, norm_num_groups, mid_attention,
    vq_embed_dim, scaling_factor, posterior_std, chunk, channels_last}``; latent.shape[0] is vq_embed_dim (the
    diffused variable) and ``latent_channels`` the width of the network's output before quant_conv."""

    posterior_type = DiagGaussian
    family = "vqvae"
    # the conformance kit (zoo.testing): a 2-level network, 2x downsampling of an 8x8 RGB image
    test_shapes = {"latent_shape": (3, 4, 4), "data_shape": (3, 8, 8)}
    test_args = {"block_out_channels": [16, 32], "layers_per_block": 1, "norm_num_groups": 8}
    zoo_test_components = {"decoder": {"name": "vqmodel", "num_vq_embeddings": 16, **test_args}}

    def __init__(self, *, data_shape, latent_shape, latent_channels: int | None = None,
                 block_out_channels=(128, 256, 512), layers_per_block: int = 2, norm_num_groups: int = 32,
                 mid_attention: bool = True, scaling_factor: float = 1.0, posterior_std: float = 0.01,
                 chunk: int = 4, channels_last: bool = False):
        super().__init__()
        self.cfg = CoderConfig.from_args(dict(block_out_channels=block_out_channels, layers_per_block=layers_per_block,
                                              norm_num_groups=norm_num_groups, mid_attention=mid_attention,
                                              chunk=chunk, channels_last=channels_last))
        embed_dim = int(latent_shape[0])
        channels = int(latent_channels) if latent_channels is not None else embed_dim
        check_shapes("vq encoder", self.cfg, data_shape, latent_shape, embed_dim)
        self.scaling_factor = _scale(scaling_factor)
        if not isinstance(posterior_std, (int, float)) or isinstance(posterior_std, bool) or posterior_std <= 0:
            raise ValueError(f"posterior_std must be a positive number, got {posterior_std!r}")
        self.posterior_std = float(posterior_std)
        self.net = EncoderNet(self.cfg, int(data_shape[0]), channels)
        self.quant_conv = nn.Conv2d(channels, embed_dim, 1)

    def latents(self, x: Tensor) -> Tensor:
        """h(x) = quant_conv(E(x)): diffusers' ``VQModel.encode(x).latents`` (before quantisation, unscaled)."""
        return self.quant_conv(self.net(x))

    def forward(self, x: Tensor) -> DiagGaussian:
        mean = self.latents(x) * self.scaling_factor
        return DiagGaussian(mean, torch.full_like(mean, math.log(self.posterior_std)))


class VQDecoder(nn.Module):
    """Card ``decoder: {name: vqmodel, ..., latent_channels, num_vq_embeddings, scaling_factor, fast_upsample, channels_last,
    likelihood}``."""

    # the conformance kit (zoo.testing): a 2-level network, 2x downsampling of an 8x8 RGB image
    test_shapes = {"latent_shape": (3, 4, 4), "data_shape": (3, 8, 8)}
    test_args = {"block_out_channels": [16, 32], "layers_per_block": 1, "norm_num_groups": 8, "num_vq_embeddings": 16}
    zoo_test_components = {"encoder": {"name": "vqmodel", "block_out_channels": [16, 32], "layers_per_block": 1,
                                       "norm_num_groups": 8}}

    def __init__(self, *, data_shape, latent_shape, latent_channels: int | None = None,
                 block_out_channels=(128, 256, 512), layers_per_block: int = 2, norm_num_groups: int = 32,
                 mid_attention: bool = True, num_vq_embeddings: int = 256, scaling_factor: float = 1.0,
                 chunk: int = 4, fast_upsample: bool = False, channels_last: bool = False,
                 likelihood: str | dict = DEFAULT_LIKELIHOOD):
        super().__init__()
        self.cfg = CoderConfig.from_args(dict(block_out_channels=block_out_channels, layers_per_block=layers_per_block,
                                              norm_num_groups=norm_num_groups, mid_attention=mid_attention,
                                              chunk=chunk, fast_upsample=fast_upsample,
                                              channels_last=channels_last))
        embed_dim = int(latent_shape[0])
        channels = int(latent_channels) if latent_channels is not None else embed_dim
        check_shapes("vq decoder", self.cfg, data_shape, latent_shape, embed_dim)
        self.scaling_factor = _scale(scaling_factor)
        self.likelihood = make_likelihood(likelihood)
        if self.likelihood.params_per_dim != 1:
            raise ValueError(f"the decoder outputs one image, so its likelihood must take one parameter per "
                             f"dimension; {self.likelihood.name!r} takes {self.likelihood.params_per_dim}")
        self.quantize = VectorQuantizer(int(num_vq_embeddings), embed_dim)
        self.post_quant_conv = nn.Conv2d(embed_dim, channels, 1)
        self.net = DecoderNet(self.cfg, channels, int(data_shape[0]))

    def image(self, z: Tensor) -> Tensor:
        """mu_x(z) = D(post_quant_conv(quantise(z / s))): diffusers' ``VQModel.decode(z / s).sample``."""
        return self.net(self.post_quant_conv(self.quantize(z / self.scaling_factor)))

    def forward(self, z: Tensor) -> Observation:
        return self.likelihood(self.image(z))

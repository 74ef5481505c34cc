"""The convolutional encoder and decoder of the latent-diffusion autoencoders (Esser et al. 2021,
"Taming Transformers"; Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion
Models"), as our own modules: the architecture of diffusers' ``Encoder`` / ``Decoder`` used by
``AutoencoderKL`` (the Stable Diffusion VAEs) and ``VQModel`` (the LDM VQ autoencoders).

    encoder  x ─ conv_in ─ down[0] ─ ... ─ down[L-1] ─ mid ─ GN ─ SiLU ─ conv_out ─> h  [C_out, H/2^(L-1), W/2^(L-1)]
    decoder  z ─ conv_in ─ mid ─ up[0] ─ ... ─ up[L-1] ─ GN ─ SiLU ─ conv_out ─> x

* down level ``l``: ``layers_per_block`` residual blocks at ``block_out_channels[l]`` channels,
  then (except on the last level) a stride-2 3x3 conv with one zero row / column padded at the
  bottom / right;
* mid: residual block, single-head self-attention over the H*W positions, residual block;
* up level ``i`` (widths reversed, lowest resolution first): ``layers_per_block + 1`` residual
  blocks, then (except on the last level) nearest-neighbour x2 upsampling and a 3x3 conv;
* no skip connections and no time conditioning; every GroupNorm has eps 1e-6.

The blocks are the DDPM UNet's (:mod:`zoo_plugins.diffusion.unet`: ``ResBlock`` without a time
embedding, ``SelfAttention`` with one head, ``Downsample`` with padding 0, ``Upsample``), so the
parameter names and the speed notes there apply here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo_plugins.diffusion.unet import Downsample, Level, ResBlock, SelfAttention, Upsample

__all__ = ["CoderConfig", "EncoderNet", "DecoderNet", "Mid"]

EPS = 1e-6  # diffusers' Encoder / Decoder hard-code this GroupNorm epsilon


@dataclass(frozen=True)
class CoderConfig:
    """What diffusers' ``AutoencoderKL`` / ``VQModel`` config.json says about the two networks.

    ``chunk``: images per forward pass inside the networks (bounds memory at 256px and above;
    results do not depend on it).  ``fast_upsample``: the decoder upsamples with the UNet's phase
    decomposition (fewer multiply-adds, different rounding) instead of as diffusers writes it.
    ``channels_last``: the networks run in ``torch.channels_last`` from their input on (faster convolutions
    on a CPU; diffusers switches to it only after the mid-block attention, so the rounding differs).
    The defaults compute what diffusers computes, bit for bit where the layouts agree."""

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    norm_num_groups: int = 32
    mid_attention: bool = True
    chunk: int = 4
    fast_upsample: bool = False
    channels_last: bool = False

    def __post_init__(self) -> None:
        widths = tuple(int(w) for w in self.block_out_channels)
        object.__setattr__(self, "block_out_channels", widths)
        problems = []
        if not widths or any(w <= 0 for w in widths):
            problems.append(f"block_out_channels must be positive widths, got {list(widths)}")
        elif any(w % self.norm_num_groups for w in widths):
            problems.append(f"norm_num_groups {self.norm_num_groups} must divide every width {list(widths)}")
        if self.layers_per_block < 1:
            problems.append(f"layers_per_block must be >= 1, got {self.layers_per_block}")
        if self.chunk < 1:
            problems.append(f"chunk must be >= 1, got {self.chunk}")
        if problems:
            raise ValueError("invalid autoencoder config: " + "; ".join(problems))

    @property
    def downsampling(self) -> int:
        """Spatial factor between image and latent: 2^(levels - 1)."""
        return 2 ** (len(self.block_out_channels) - 1)

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> "CoderConfig":
        return cls(block_out_channels=tuple(args.get("block_out_channels", (128, 256, 512, 512))),
                   layers_per_block=int(args.get("layers_per_block", 2)),
                   norm_num_groups=int(args.get("norm_num_groups", 32)),
                   mid_attention=bool(args.get("mid_attention", True)),
                   chunk=int(args.get("chunk", 4)), fast_upsample=bool(args.get("fast_upsample", False)),
                   channels_last=bool(args.get("channels_last", False)))


def _act(h: Tensor) -> Tensor:
    return F.silu(h, inplace=not torch.is_grad_enabled())


class Mid(nn.Module):
    """ResBlock, single-head self-attention, ResBlock at the lowest resolution."""

    def __init__(self, ch: int, groups: int, attention: bool):
        super().__init__()
        self.res1 = ResBlock(ch, ch, None, groups, EPS, 0.0)
        self.attn = SelfAttention(ch, groups, EPS, None) if attention else None
        self.res2 = ResBlock(ch, ch, None, groups, EPS, 0.0)

    def forward(self, h: Tensor) -> Tensor:
        h = self.res1(h)
        if self.attn is not None:
            # channels-last from here on, as diffusers' attention leaves its output (a transposed view plus
            # the residual): the convolutions after it then round as diffusers' do, and run faster on a CPU
            h = self.attn(h).contiguous(memory_format=torch.channels_last)
        return self.res2(h)


class NearestUpsample(Upsample):
    """Nearest-neighbour x2 then the 3x3 conv, computed as written (diffusers' ``Upsample2D``): the same
    parameters as the UNet's :class:`Upsample`, whose faster phase decomposition rounds differently
    (~1e-5 on a decoder's output); ``fast_upsample: true`` selects that one."""

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _chunked(forward, x: Tensor, chunk: int) -> Tensor:
    if x.shape[0] <= chunk:
        return forward(x)
    return torch.cat([forward(part) for part in x.split(chunk)])


class EncoderNet(nn.Module):
    """Image ``[B, in_channels, H, W]`` -> ``[B, out_channels, H/f, W/f]``, f = ``cfg.downsampling``."""

    def __init__(self, cfg: CoderConfig, in_channels: int, out_channels: int):
        super().__init__()
        self.cfg = cfg
        widths, g = cfg.block_out_channels, cfg.norm_num_groups
        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        ch = widths[0]
        for l, width in enumerate(widths):
            level = Level()
            for _ in range(cfg.layers_per_block):
                level.res.append(ResBlock(ch, width, None, g, EPS, 0.0))
                ch = width
            if l < len(widths) - 1:
                level.downsample = Downsample(ch, padding=0)
            self.down.append(level)
        self.mid = Mid(ch, g, cfg.mid_attention)
        self.norm_out = nn.GroupNorm(g, ch, eps=EPS)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)

    def _forward(self, x: Tensor) -> Tensor:
        # one layout in, whatever the caller's: the same rounding every time
        h = self.conv_in(x.contiguous(memory_format=self.cfg.memory_format))
        for level in self.down:
            for res in level.res:
                h = res(h)
            if level.downsample is not None:
                h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(_act(self.norm_out(h)))

    def forward(self, x: Tensor) -> Tensor:
        return _chunked(self._forward, x, self.cfg.chunk)


class DecoderNet(nn.Module):
    """Latent ``[B, in_channels, h, w]`` -> image ``[B, out_channels, h*f, w*f]``."""

    def __init__(self, cfg: CoderConfig, in_channels: int, out_channels: int):
        super().__init__()
        self.cfg = cfg
        widths, g = cfg.block_out_channels, cfg.norm_num_groups
        ch = widths[-1]
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        self.mid = Mid(ch, g, cfg.mid_attention)
        self.up = nn.ModuleList()  # lowest resolution first, as diffusers' up_blocks
        for i, width in enumerate(reversed(widths)):
            level = Level()
            for _ in range(cfg.layers_per_block + 1):
                level.res.append(ResBlock(ch, width, None, g, EPS, 0.0))
                ch = width
            if i < len(widths) - 1:
                level.upsample = Upsample(ch) if cfg.fast_upsample else NearestUpsample(ch)
            self.up.append(level)
        self.norm_out = nn.GroupNorm(g, ch, eps=EPS)
        self.conv_out = nn.Conv2d(ch, out_channels, 3, padding=1)

    def _forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z.contiguous(memory_format=self.cfg.memory_format)))
        for level in self.up:
            for res in level.res:
                h = res(h)
            if level.upsample is not None:
                h = level.upsample(h)
        return self.conv_out(_act(self.norm_out(h)))

    def forward(self, z: Tensor) -> Tensor:
        return _chunked(self._forward, z, self.cfg.chunk)

"""A residual MLP noise predictor for diffusion over small latents of any shape.

The ``ddpm`` prior's UNet needs a square image ``[C, H, H]``; the latent of a small VAE is a vector
(``vae-mnist``'s ``[16]``), where convolutions have nothing to convolve.  ``MLPDenoiser`` is the
same call, ``net(x_t, t) -> output``, on the flattened variable:

    h_0 = W_in x_t
    h_k = h_{k-1} + W_2 SiLU(W_1 SiLU(LN(h_{k-1})) + e(t))        k = 1..blocks
    out = W_out SiLU(LN(h_blocks))                                 (zero-initialised: eps = 0 at the start)

with e(t) the sinusoidal embedding of the step index (Transformer positional encoding, as the UNet's)
through Linear-SiLU-Linear.  ``out_mult`` 2 makes the extra output set v of learned variances
(Nichol & Dhariwal 2021): the output is ``[B, 2C, ...]``, eps in the first C channels, v in the last.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["MLPDenoiser"]


def _sinusoid(t: Tensor, dim: int) -> Tensor:
    """[B, dim] sin/cos features of t at geometric frequencies 1 .. 1/10000."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    a = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(a), torch.cos(a)], 1)


class _Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.act = nn.SiLU()

    def forward(self, h: Tensor, temb: Tensor) -> Tensor:
        return h + self.fc2(self.act(self.fc1(self.act(self.norm(h))) + temb))


class MLPDenoiser(nn.Module):
    """eps_theta(x_t, t) (and v, with ``out_mult=2``) for a variable of shape ``shape`` (any rank)."""

    def __init__(self, shape: tuple[int, ...], *, width: int = 256, blocks: int = 3, time_dim: int = 64,
                 out_mult: int = 1):
        super().__init__()
        for key, v in (("width", width), ("blocks", blocks), ("time_dim", time_dim)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"denoiser.{key} must be a positive integer, got {v!r}")
        if time_dim % 2:
            raise ValueError(f"denoiser.time_dim must be even, got {time_dim}")
        self.shape = tuple(int(s) for s in shape)
        self.out_mult = int(out_mult)
        d = math.prod(self.shape)
        self.time_dim = time_dim
        self.time = nn.Sequential(nn.Linear(time_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.inp = nn.Linear(d, width)
        self.blocks = nn.ModuleList(_Block(width) for _ in range(blocks))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, d * self.out_mult)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @classmethod
    def from_spec(cls, spec: Any, shape: tuple[int, ...], out_mult: int) -> "MLPDenoiser":
        d = dict(spec or {})
        name = d.pop("name", "mlp")
        if name != "mlp":
            raise ValueError(f"denoiser.name must be 'mlp' (or give 'unet' instead), got {name!r}")
        unknown = set(d) - {"width", "blocks", "time_dim"}
        if unknown:
            raise ValueError(f"denoiser: unknown option(s) {sorted(unknown)}; allowed: width, blocks, time_dim")
        return cls(shape, out_mult=out_mult, **d)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        b = x.shape[0]
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(b) if torch.as_tensor(t).numel() == 1 \
            else torch.as_tensor(t, device=x.device)
        temb = self.time(_sinusoid(t, self.time_dim).to(x.dtype))
        h = self.inp(x.reshape(b, -1))
        for block in self.blocks:
            h = block(h, temb)
        out = self.out(torch.nn.functional.silu(self.norm(h)))
        if self.out_mult == 1:
            return out.reshape(b, *self.shape)
        # [B, out_mult * D] -> [B, out_mult * C, ...]: eps is the first C channels, v the next
        return out.reshape(b, self.out_mult, *self.shape).reshape(b, self.out_mult * self.shape[0], *self.shape[1:])

"""A normalising-flow prior: RealNVP (Dinh et al. 2017) affine couplings over N(0, I).

    u = f(z),  log p(z) = log N(f(z); 0, I) + log |det df/dz|,   z = f^{-1}(u) to sample.

Each coupling keeps half of the (flattened) latent fixed and scales and shifts the other half
with an MLP of the fixed half; the halves alternate from layer to layer.  The last layer of
every MLP starts at zero, so a new flow prior is exactly N(0, I) and learns away from it.
Usable under any encoder and decoder: the rate is the one-sample estimate log q(z|x) - log p(z).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo.distributions import LOG_2PI


class AffineCoupling(nn.Module):
    """y_b = x_b * exp(s(x_a)) + t(x_a) on the positions ``mask == 0``; x_a (``mask == 1``) passes through."""

    def __init__(self, dim: int, mask: Tensor, hidden: int, depth: int):
        super().__init__()
        self.register_buffer("mask", mask)
        layers: list[nn.Module] = []
        size = dim
        for _ in range(depth):
            layers += [nn.Linear(size, hidden), nn.SiLU()]
            size = hidden
        last = nn.Linear(size, 2 * dim)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)
        self.scale = nn.Parameter(torch.zeros(dim))  # bounds log-scales: s = scale * tanh(raw)

    def _st(self, xa: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self.net(xa).chunk(2, -1)
        free = 1 - self.mask
        return self.scale.exp() * torch.tanh(s) * free, t * free

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """z -> u and log |det du/dz|."""
        s, t = self._st(x * self.mask)
        return x * self.mask + (1 - self.mask) * (x * s.exp() + t), s.sum(-1)

    def inverse(self, y: Tensor) -> Tensor:
        s, t = self._st(y * self.mask)
        return y * self.mask + (1 - self.mask) * ((y - t) * (-s).exp())


class RealNVPPrior(nn.Module):
    """p(z) = N(f(z); 0, I) |det df/dz| with ``layers`` affine couplings (MLPs of ``hidden`` units, ``depth`` layers)."""

    exact = True

    def __init__(self, *, latent_shape, data_shape=None, layers: int = 4, hidden: int = 64, depth: int = 2):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        d = math.prod(self.latent_shape)
        if d < 2:
            raise ValueError(f"the realnvp prior needs at least 2 latent dimensions, got latent shape {list(latent_shape)}")
        half = torch.zeros(d)
        half[: d // 2] = 1
        masks = [half if i % 2 == 0 else 1 - half for i in range(layers)]
        # alternate also between contiguous halves and interleaved positions so every pair interacts
        interleave = (torch.arange(d) % 2).float()
        masks = [m if (i // 2) % 2 == 0 else (interleave if i % 2 == 0 else 1 - interleave)
                 for i, m in enumerate(masks)]
        self.couplings = nn.ModuleList(AffineCoupling(d, m, hidden, depth) for m in masks)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def forward_flow(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """u = f(z) and log |det df/dz|, for z ``[N, D]``."""
        log_det = z.new_zeros(z.shape[0])
        for c in self.couplings:
            z, ld = c(z)
            log_det = log_det + ld
        return z, log_det

    def log_prob(self, z: Tensor) -> Tensor:
        """log N(f(z); 0, I) + log |det df/dz|, nats; any leading dimensions."""
        lead = z.shape[: z.dim() - len(self.latent_shape)]
        u, log_det = self.forward_flow(z.reshape(-1, math.prod(self.latent_shape)))
        out = -0.5 * (u ** 2 + LOG_2PI).sum(-1) + log_det
        return out.reshape(lead)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        u = torch.randn((n, math.prod(self.latent_shape)), generator=generator,
                        device=self._anchor.device, dtype=self._anchor.dtype)
        for c in reversed(self.couplings):
            u = c.inverse(u)
        return u.reshape(n, *self.latent_shape)

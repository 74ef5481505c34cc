"""A masked autoregressive flow prior, MAF (Papamakarios et al. 2017), beside the RealNVP prior.

Each layer is an autoregressive affine map of z in some order (Papamakarios et al. eq. 2-5):

    u_i = (z_i - mu_i(z_<i)) exp(-alpha_i(z_<i)),    log |det du/dz| = -sum_i alpha_i,

with (mu, alpha) from one MADE pass (:mod:`made`).  Stacking L layers with the order reversed
between layers and u_L ~ N(0, I):

    log p(z) = log N(u_L; 0, I) - sum_l sum_i alpha_{l,i}          (exact, one pass per layer)

Density evaluation is parallel; sampling inverts each layer in D sequential MADE passes,
z_i = u_i exp(alpha_i) + mu_i (the MAF/IAF trade-off, Papamakarios et al. section 3.3).  The
MADE output layers start at zero, so a new prior is exactly N(0, I), as the RealNVP prior.
``alpha = exp(scale) * tanh(raw)`` bounds the log-scales as the RealNVP couplings do.
(The paper's batch-norm layers between MADEs are left out: the prior is a small latent density.)
Usable under any encoder and decoder: the rate is the one-sample estimate log q(z|x) - log p(z).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo.distributions import LOG_2PI

from .made import MADE, order_degrees


class MAFLayer(nn.Module):
    """One autoregressive affine layer u = (z - mu(z)) exp(-alpha(z)) in the visiting order ``order``."""

    def __init__(self, dim: int, order: Tensor, hidden: int, depth: int, activation: str = "relu"):
        super().__init__()
        deg = order_degrees(order)
        self.made = MADE(deg, torch.cat([deg, deg]), [hidden] * depth, activation=activation, zero_last=True)
        self.scale = nn.Parameter(torch.zeros(dim))
        self.dim = dim

    def params(self, z: Tensor) -> tuple[Tensor, Tensor]:
        mu, raw = self.made(z).chunk(2, -1)
        return mu, self.scale.exp() * torch.tanh(raw)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z -> u and log |det du/dz| = -sum_i alpha_i (nats), for z ``[N, D]``."""
        mu, alpha = self.params(z)
        return (z - mu) * (-alpha).exp(), -alpha.sum(-1)

    def inverse(self, u: Tensor) -> Tensor:
        """z from u in D passes: after pass j every position of degree <= j is exact."""
        z = torch.zeros_like(u)
        for _ in range(self.dim):
            mu, alpha = self.params(z)
            z = u * alpha.exp() + mu
        return z


class MAFPrior(nn.Module):
    """p(z) = N(f(z); 0, I) |det df/dz| with ``layers`` MADE layers (``depth`` hidden layers of ``hidden`` units)."""

    exact = True
    notes = {"kl_per_dim": "not defined: the MAF prior does not factorise over latent dimensions"}

    def __init__(self, *, latent_shape, data_shape=None, layers: int = 4, hidden: int = 64, depth: int = 2,
                 activation: str = "relu"):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        d = math.prod(self.latent_shape)
        if layers < 1:
            raise ValueError(f"the maf prior needs at least 1 layer, got {layers}")
        forward, backward = torch.arange(d), torch.arange(d).flip(0)
        self.layers = nn.ModuleList(MAFLayer(d, forward if i % 2 == 0 else backward, hidden, depth, activation)
                                    for i in range(layers))
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def forward_flow(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """u = f(z) and log |det df/dz|, for z ``[N, D]``."""
        log_det = z.new_zeros(z.shape[0])
        for layer in self.layers:
            z, ld = layer(z)
            log_det = log_det + ld
        return z, log_det

    def log_prob(self, z: Tensor) -> Tensor:
        """log N(f(z); 0, I) + log |det df/dz|, nats; any leading dimensions."""
        lead = z.shape[: z.dim() - len(self.latent_shape)]
        u, log_det = self.forward_flow(z.reshape(-1, math.prod(self.latent_shape)))
        return (-0.5 * (u ** 2 + LOG_2PI).sum(-1) + log_det).reshape(lead)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        u = torch.randn((n, math.prod(self.latent_shape)), generator=generator,
                        device=self._anchor.device, dtype=self._anchor.dtype)
        with torch.no_grad():
            for layer in reversed(self.layers):
                u = layer.inverse(u)
        return u.reshape(n, *self.latent_shape)

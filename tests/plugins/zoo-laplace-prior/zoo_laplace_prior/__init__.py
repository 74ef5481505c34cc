"""A third-party prior for latent-zoo: p(z) = prod_d Laplace(z_d; 0, b)."""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from zoo import hookimpl


class LaplacePrior(nn.Module):
    exact = True

    def __init__(self, *, latent_shape, data_shape=None, scale: float = 1.0):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        self.register_buffer("log_b", torch.tensor(math.log(scale)))

    def log_prob(self, z):
        """sum_d -log(2b) - |z_d| / b (nats)."""
        dims = tuple(range(-len(self.latent_shape), 0))
        return (-math.log(2) - self.log_b - z.abs() / self.log_b.exp()).sum(dims)

    def sample(self, n, generator=None):
        u = torch.rand((n, *self.latent_shape), generator=generator, device=self.log_b.device,
                       dtype=self.log_b.dtype) - 0.5
        return -self.log_b.exp() * u.sign() * torch.log1p(-2 * u.abs())


@hookimpl
def register_priors(register):
    register("laplace", LaplacePrior)


@hookimpl
def register_cards(register):
    register(Path(__file__).parent / "vae-laplace-digits.md")

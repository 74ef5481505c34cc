"""Modules written for other libraries (tests/test_build_trial.py): an encoder returning ``(mu, logvar)``, as many
VAE tutorials' and pythae's encoders do, and a decoder returning a bare tensor."""
from __future__ import annotations

import math

from torch import Tensor, nn


class TupleEncoder(nn.Module):
    """x -> (mu, logvar): not a zoo encoder until wrapped in zoo.adapters.MeanLogvarEncoder."""

    def __init__(self, data_dims: int = 64, latent: int = 4):
        super().__init__()
        self.config = {"data_dims": data_dims, "latent": latent}
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(data_dims, 2 * latent))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.net(x).chunk(2, -1)
        return mu, logvar


class TensorDecoder(nn.Module):
    """z -> logits tensor: has a likelihood, but forward returns a Tensor instead of an observation."""

    def __init__(self, data_shape=(1, 8, 8), latent: int = 4):
        super().__init__()
        from zoo.likelihoods import Bernoulli

        self.likelihood = Bernoulli()
        self.data_shape = tuple(data_shape)
        self.net = nn.Linear(latent, math.prod(data_shape))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).reshape(z.shape[0], *self.data_shape)

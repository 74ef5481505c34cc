"""Modules written inline by a user (no plugin package), for tests/test_byo.py: they honour zoo.contracts."""
from __future__ import annotations

import math

from torch import Tensor, nn

from zoo.distributions import DiagGaussian
from zoo.likelihoods import Bernoulli


class TinyEncoder(nn.Module):
    """x -> a diagonal Gaussian q(z|x); declares its constructor arguments in ``config``."""

    def __init__(self, data_dims: int = 64, latent: int = 4, hidden: int = 32):
        super().__init__()
        self.config = {"data_dims": data_dims, "latent": latent, "hidden": hidden}
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(data_dims, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))

    def forward(self, x: Tensor) -> DiagGaussian:
        mean, log_scale = self.net(x).chunk(2, -1)
        return DiagGaussian(mean, log_scale.clamp(min=-8))


class TinyDecoder(nn.Module):
    """z -> Bernoulli p(x|z) over ``data_shape``."""

    def __init__(self, data_shape=(1, 8, 8), latent: int = 4, hidden: int = 32):
        super().__init__()
        self.config = {"data_shape": list(data_shape), "latent": latent, "hidden": hidden}
        self.data_shape = tuple(data_shape)
        self.likelihood = Bernoulli()
        self.net = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, math.prod(data_shape)))

    def forward(self, z: Tensor):
        return self.likelihood(self.net(z).reshape(z.shape[0], *self.data_shape))


class NoLikelihoodDecoder(nn.Module):
    """Violates the Decoder contract: no ``likelihood``."""

    def forward(self, z: Tensor):
        return z


class UndeclaredEncoder(TinyEncoder):
    """Needs a constructor argument it does not declare in ``config``: a card could not rebuild it."""

    def __init__(self, latent: int):
        super().__init__(latent=latent)
        del self.config

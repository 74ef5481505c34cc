"""Built-in decoders p(x|z): a network producing the parameters of a likelihood."""
from __future__ import annotations

import math

from torch import Tensor, nn

from zoo.contracts import Observation
from zoo.likelihoods import make_likelihood

from .layers import activation as act_layer
from .layers import deconv_stack, mlp, mlp_parameter_count, numel


class MLPDecoder(nn.Module):
    """z -> MLP -> likelihood parameters for every data dimension."""

    def __init__(self, *, data_shape, latent_shape, hidden: list[int] = (256, 512),
                 likelihood: str | dict = "bernoulli", activation: str = "relu"):
        super().__init__()
        self.likelihood = make_likelihood(likelihood)
        self.data_shape = tuple(data_shape)
        k = self.likelihood.params_per_dim
        out_shape = (k * data_shape[0], *data_shape[1:])
        self.net = nn.Sequential(nn.Flatten(), mlp([numel(latent_shape), *hidden, numel(out_shape)], activation),
                                 nn.Unflatten(1, out_shape))

    def forward(self, z: Tensor) -> Observation:
        return self.likelihood(self.net(z))

    @staticmethod
    def parameter_count(*, data_shape, latent_shape, hidden=(256, 512), **_) -> int:
        """Weights and biases of the linear layers for a one-parameter likelihood (a lower bound for the
        others; zoo.contracts.DeclaredSize), without building them."""
        return mlp_parameter_count([numel(latent_shape), *hidden, numel(data_shape)])


class ConvDecoder(nn.Module):
    """z -> linear -> stride-2 transposed convolutions -> centre crop to the image size."""

    def __init__(self, *, data_shape, latent_shape, channels: list[int] = (128, 64, 32),
                 likelihood: str | dict = "discretized-logistic", activation: str = "relu"):
        super().__init__()
        self.likelihood = make_likelihood(likelihood)
        c, h, w = data_shape
        channels = list(channels)
        ups = len(channels) - 1
        self.start = (math.ceil(h / 2 ** ups), math.ceil(w / 2 ** ups))
        self.data_shape = tuple(data_shape)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(numel(latent_shape), channels[0] * self.start[0] * self.start[1]),
                                act_layer(activation))
        self.body = deconv_stack(channels, activation)
        self.out = nn.Conv2d(channels[-1], self.likelihood.params_per_dim * c, 3, padding=1)

    def forward(self, z: Tensor) -> Observation:
        h = self.fc(z).reshape(z.shape[0], -1, *self.start)
        out = self.out(self.body(h))
        _, hh, ww = self.data_shape
        top, left = (out.shape[2] - hh) // 2, (out.shape[3] - ww) // 2
        return self.likelihood(out[:, :, top:top + hh, left:left + ww])


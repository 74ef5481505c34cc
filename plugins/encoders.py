"""Built-in encoders q(z|x): networks with a diagonal-Gaussian head."""
from __future__ import annotations

from torch import Tensor, nn

from zoo.distributions import DiagGaussian

from .layers import activation as act_layer
from .layers import conv_stack, mlp, mlp_parameter_count, numel, output_shape


class GaussianHead(nn.Module):
    """features -> DiagGaussian over ``latent_shape`` (mean and log-scale from one linear layer)."""

    def __init__(self, in_features: int, latent_shape, min_log_scale: float = -8.0):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        self.linear = nn.Linear(in_features, 2 * numel(latent_shape))
        self.min_log_scale = min_log_scale

    def forward(self, h: Tensor) -> DiagGaussian:
        mean, log_scale = self.linear(h).chunk(2, dim=-1)
        shape = (h.shape[0], *self.latent_shape)
        return DiagGaussian(mean.reshape(shape), log_scale.clamp(min=self.min_log_scale).reshape(shape))


class MLPEncoder(nn.Module):
    """Flatten -> MLP -> Gaussian head."""

    def __init__(self, *, data_shape, latent_shape, hidden: list[int] = (512, 256), activation: str = "relu"):
        super().__init__()
        hidden = list(hidden)
        self.body = nn.Sequential(nn.Flatten(), mlp([numel(data_shape), *hidden], activation), act_layer(activation))
        self.head = GaussianHead(hidden[-1], latent_shape)

    def forward(self, x: Tensor) -> DiagGaussian:
        return self.head(self.body(x))

    @staticmethod
    def parameter_count(*, data_shape, latent_shape, hidden=(512, 256), **_) -> int:
        """Weights and biases of the linear layers (zoo.contracts.DeclaredSize), without building them."""
        return mlp_parameter_count([numel(data_shape), *hidden, 2 * numel(latent_shape)])


class ConvEncoder(nn.Module):
    """Stride-2 convolutions -> flatten -> Gaussian head."""

    def __init__(self, *, data_shape, latent_shape, channels: list[int] = (32, 64, 128), activation: str = "relu"):
        super().__init__()
        convs = conv_stack(data_shape[0], list(channels), activation)
        self.body = nn.Sequential(convs, nn.Flatten())
        self.head = GaussianHead(numel(output_shape(self.body, data_shape)), latent_shape)

    def forward(self, x: Tensor) -> DiagGaussian:
        return self.head(self.body(x))


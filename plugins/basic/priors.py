"""Built-in priors p(z): the standard normal and a learned mixture of Gaussians."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo.distributions import LOG_2PI, DiagGaussian, gaussian_kl_standard_normal, sum_event


class StandardNormal(nn.Module):
    """p(z) = N(0, I) over ``latent_shape``; KL to a diagonal Gaussian in closed form."""

    exact = True

    def __init__(self, *, latent_shape, data_shape=None):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # carries device/dtype

    def log_prob(self, z: Tensor) -> Tensor:
        """log N(z; 0, I) = -1/2 sum_d (z_d^2 + log 2pi), nats; any leading dimensions."""
        return sum_event(-0.5 * (z ** 2 + LOG_2PI), len(self.latent_shape))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn((n, *self.latent_shape), generator=generator,
                           device=self._anchor.device, dtype=self._anchor.dtype)

    def cross_entropy(self, q: DiagGaussian) -> Tensor:
        """-E_q[log p(z)] = 1/2 sum_d (mu_d^2 + sigma_d^2 + log 2pi), nats."""
        return sum_event(0.5 * (q.mean ** 2 + (2 * q.log_scale).exp() + LOG_2PI), len(self.latent_shape))

    def kl_per_dim(self, q: DiagGaussian) -> Tensor | None:
        """KL(q(z_d|x) || N(0,1)) for every latent dimension, [B, *latent_shape]; None unless q is a
        diagonal Gaussian (e.g. a flow posterior, whose KL does not split per dimension)."""
        if not isinstance(q, DiagGaussian):
            return None
        return gaussian_kl_standard_normal(q.mean, q.log_scale)


class MixtureOfGaussians(nn.Module):
    """p(z) = sum_k pi_k N(z; mu_k, diag sigma_k^2), all learned.  KL to q is estimated by MC."""

    exact = True

    def __init__(self, *, latent_shape, data_shape=None, components: int = 10, init_scale: float = 1.0,
                 learn_weights: bool = True):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        d = math.prod(self.latent_shape)
        g = torch.Generator().manual_seed(0)
        self.means = nn.Parameter(torch.randn(components, d, generator=g) * init_scale)
        self.log_scales = nn.Parameter(torch.zeros(components, d))
        self.logits = nn.Parameter(torch.zeros(components), requires_grad=learn_weights)

    def log_joint(self, z: Tensor) -> Tensor:
        """log pi_k + log N(z; mu_k, sigma_k^2) for every component, ``[N, K]`` (z flattened to ``[N, D]``)."""
        zf = z.reshape(-1, 1, self.means.shape[1])
        comp = DiagGaussian(self.means, self.log_scales).log_prob_per_dim(zf).sum(-1)  # [N, K]
        return comp + torch.log_softmax(self.logits, 0)

    def log_prob(self, z: Tensor) -> Tensor:
        """log sum_k pi_k N(z; mu_k, sigma_k^2), nats; any leading dimensions."""
        lead = z.shape[: z.dim() - len(self.latent_shape)]
        return torch.logsumexp(self.log_joint(z), dim=-1).reshape(lead)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        k = torch.multinomial(torch.softmax(self.logits.detach(), 0), n, replacement=True, generator=generator)
        eps = torch.randn((n, self.means.shape[1]), generator=generator, device=self.means.device)
        z = self.means[k] + self.log_scales[k].exp() * eps
        return z.reshape(n, *self.latent_shape).detach()

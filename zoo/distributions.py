"""Tensor-backed distributions used as q(z|x), p(z) and p(x|z).

Conventions (all of latent-zoo): a distribution has a batch dimension first and an *event*
made of every dimension after it; ``log_prob`` sums over the event and returns one number per
sample, in nats.  Extra leading sample dimensions (``[S, B, ...]``) are allowed in ``log_prob``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


def bits_per_dim(nats: Tensor | float, dims: int | tuple[int, ...] | torch.Size) -> Tensor | float:
    """nats per sample -> bits per data dimension: nats / (D ln 2), D the number of data dimensions (given as D or
    as the per-sample shape, e.g. (3, 32, 32)).  The one conversion the zoo uses (models, outputs, baselines,
    diffusion's bounds)."""
    d = dims if isinstance(dims, int) else math.prod(dims)
    return nats / (d * math.log(2.0))


def sum_event(t: Tensor, event_dims: int) -> Tensor:
    """Sum the last ``event_dims`` dimensions."""
    return t.sum(dim=tuple(range(-event_dims, 0))) if event_dims else t


@dataclass
class DiagGaussian:
    """N(mean, diag(exp(log_scale)^2)) over an event of any shape; batch dimension first."""

    mean: Tensor
    log_scale: Tensor

    @property
    def event_dims(self) -> int:
        return self.mean.dim() - 1

    @property
    def stddev(self) -> Tensor:
        return self.log_scale.exp()

    @property
    def variance(self) -> Tensor:
        """sigma^2 per dimension (the covariance is diagonal)."""
        return (2 * self.log_scale).exp()

    def rsample(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Reparameterised sample: ``[B, ...]`` or ``[n, B, ...]`` when ``n`` is given."""
        shape = self.mean.shape if n is None else (n, *self.mean.shape)
        eps = torch.randn(shape, device=self.mean.device, dtype=self.mean.dtype, generator=generator)
        return self.mean + self.stddev * eps

    sample = rsample

    def log_prob(self, z: Tensor) -> Tensor:
        """log N(z; mean, scale^2) summed over the event (nats)."""
        return sum_event(self.log_prob_per_dim(z), self.event_dims)

    def log_prob_per_dim(self, z: Tensor) -> Tensor:
        """-1/2 log 2pi - log sigma - (z - mu)^2 / (2 sigma^2), elementwise."""
        return -0.5 * LOG_2PI - self.log_scale - 0.5 * ((z - self.mean) / self.stddev) ** 2

    def entropy(self) -> Tensor:
        """H[q] = sum_d (1/2 log 2pi e + log sigma_d) (nats)."""
        return sum_event(0.5 * (LOG_2PI + 1.0) + self.log_scale, self.event_dims).expand(self.mean.shape[0])

    def cross_log_prob(self, z: Tensor, chunk: int = 1024) -> Tensor:
        """log q(z_m | x_b) for every pair: z ``[M, ...]`` -> ``[M, B]`` (used for the aggregate posterior)."""
        mu = self.mean.flatten(1)
        inv = (-self.log_scale.flatten(1)).exp()
        const = -0.5 * LOG_2PI * mu.shape[1] - self.log_scale.flatten(1).sum(1)  # [B]
        zf = z.flatten(1)
        rows = []
        for start in range(0, zf.shape[0], chunk):
            zc = zf[start:start + chunk]
            # ((z - mu) * inv)^2 summed over d, expanded to avoid a [M, B, D] tensor
            a = (zc ** 2) @ (inv ** 2).T
            b = zc @ (mu * inv ** 2).T
            c = ((mu * inv) ** 2).sum(1)
            rows.append(const - 0.5 * (a - 2 * b + c))
        return torch.cat(rows)

    def cross_log_prob_per_dim(self, z: Tensor) -> Tensor:
        """log q(z_{m,d} | x_b) for every pair and latent dimension: z ``[M, ...]`` -> ``[M, B, D]`` (D the
        flattened event), for the aggregate posterior's marginals q(z_d) (total correlation)."""
        mu, log_scale = self.mean.flatten(1), self.log_scale.flatten(1)
        zf = z.flatten(1).unsqueeze(1)                                          # [M, 1, D]
        return -0.5 * LOG_2PI - log_scale - 0.5 * ((zf - mu) * (-log_scale).exp()) ** 2

    def detach(self) -> "DiagGaussian":
        return DiagGaussian(self.mean.detach(), self.log_scale.detach())

    def to(self, *args, **kwargs) -> "DiagGaussian":
        return DiagGaussian(self.mean.to(*args, **kwargs), self.log_scale.to(*args, **kwargs))

    def __getitem__(self, index) -> "DiagGaussian":
        return DiagGaussian(self.mean[index], self.log_scale[index])

    @staticmethod
    def cat(parts: list["DiagGaussian"]) -> "DiagGaussian":
        return DiagGaussian(torch.cat([p.mean for p in parts]), torch.cat([p.log_scale for p in parts]))


def gaussian_kl_standard_normal(mean: Tensor, log_scale: Tensor) -> Tensor:
    """Elementwise KL(N(mu, sigma^2) || N(0, 1)) = 1/2 (mu^2 + sigma^2 - 1) - log sigma (nats)."""
    return 0.5 * (mean ** 2 + (2 * log_scale).exp() - 1.0) - log_scale


def gaussian_kl(mean_q: Tensor, log_scale_q: Tensor, mean_p: Tensor, log_scale_p: Tensor) -> Tensor:
    """Elementwise KL(N(mu_q, s_q^2) || N(mu_p, s_p^2))
    = log s_p/s_q + (s_q^2 + (mu_q - mu_p)^2) / (2 s_p^2) - 1/2 (nats)."""
    return (log_scale_p - log_scale_q
            + 0.5 * ((2 * log_scale_q).exp() + (mean_q - mean_p) ** 2) * (-2 * log_scale_p).exp() - 0.5)

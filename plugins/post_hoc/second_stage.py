"""A second-stage VAE as a prior p(z) (Dai & Wipf 2019, "Diagnosing and enhancing VAE models", section 4).

A VAE trained with a N(0, I) prior leaves its aggregate posterior q(z) = 1/N sum_n q(z|x_n) away
from N(0, I); the two-stage VAE fits a second, small VAE to the codes z and samples z from it:

    p(z) = integral N(z; mu(u), diag sigma(u)^2) N(u; 0, I) du,   u ~ N(0, I) in R^inner

with an inner encoder r(u|z) = N(u; m(z), diag s(z)^2).  log p(z) has no closed form; ``log_prob`` is
the k-sample importance-weighted bound (Burda et al. 2015, eq. 8) with r as the proposal,

    log p(z) >= log 1/k sum_i p(z|u_i) N(u_i; 0, I) / r(u_i|z),   u_i ~ r(u|z),

a stochastic lower bound (``exact = False``): the outer ELBO's rate log q(z|x) - log p(z) is then an
upper bound on KL(q(z|x) || p(z)) in expectation, and diagnose reports -ELBO for the NLL instead of
an IWAE value (an importance weight built from a bound is not a bound).  Dai & Wipf learn the
decoder's variance (their gamma); here ``sigma(u)`` is learned per dimension.  The decoder's output
layer starts at zero, so a new prior is exactly N(0, I).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo.distributions import LOG_2PI, DiagGaussian

from zoo_plugins.basic.layers import mlp


class SecondStageVAEPrior(nn.Module):
    """p(z) as a small VAE over z (``inner`` latent dims, MLPs of ``hidden`` units); log_prob with ``k`` samples."""

    exact = False
    estimator = "the second-stage VAE's k-sample importance-weighted bound on log p(z) (a stochastic lower bound)"
    notes = {"kl_per_dim": "not defined: the second-stage VAE prior does not factorise over latent dimensions",
             "nll": "no IWAE: log p(z) of the second-stage VAE is itself a bound; the NLL is the negative ELBO"}

    def __init__(self, *, latent_shape, data_shape=None, inner: int | None = None, hidden: list[int] = (64, 64),
                 k: int = 16, min_log_scale: float = -6.0, activation: str = "relu"):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        d = math.prod(self.latent_shape)
        self.inner = int(inner or d)
        if self.inner < 1 or k < 1:
            raise ValueError(f"the second-stage VAE prior needs inner >= 1 and k >= 1, got inner={inner}, k={k}")
        hidden = list(hidden)
        self.k, self.min_log_scale = int(k), float(min_log_scale)
        self.enc = mlp([d, *hidden, 2 * self.inner], activation)
        self.dec = mlp([self.inner, *hidden, 2 * d], activation)
        nn.init.zeros_(self.dec[-1].weight)
        nn.init.zeros_(self.dec[-1].bias)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    # -- the two maps ------------------------------------------------------------------------------
    def inner_posterior(self, z: Tensor) -> DiagGaussian:
        """r(u|z) for flat codes ``[N, D]``."""
        mean, log_scale = self.enc(z).chunk(2, -1)
        return DiagGaussian(mean, log_scale.clamp(min=self.min_log_scale))

    def decode(self, u: Tensor) -> DiagGaussian:
        """p(z|u) for ``[..., inner]``."""
        mean, log_scale = self.dec(u).chunk(2, -1)
        return DiagGaussian(mean, log_scale.clamp(min=self.min_log_scale))

    @staticmethod
    def _log_standard_normal(u: Tensor) -> Tensor:
        return -0.5 * (u ** 2 + LOG_2PI).sum(-1)

    # -- bounds on log p(z), nats ------------------------------------------------------------------
    def elbo(self, z: Tensor) -> Tensor:
        """The second stage's ELBO E_r[log p(z|u)] - KL(r(u|z) || N(0, I)) for flat z ``[N, D]``, ``[N]``
        (one reparameterised sample; the KL in closed form).  Fitting maximises its mean."""
        r = self.inner_posterior(z)
        u = r.rsample()
        kl = (0.5 * (r.mean ** 2 + (2 * r.log_scale).exp() - 1.0) - r.log_scale).sum(-1)
        return self.decode(u).log_prob_per_dim(z).sum(-1) - kl

    def log_prob(self, z: Tensor) -> Tensor:
        """The k-sample importance-weighted lower bound on log p(z) (module docstring), nats; any leading dims."""
        lead = z.shape[: z.dim() - len(self.latent_shape)]
        zf = z.reshape(-1, math.prod(self.latent_shape))
        r = self.inner_posterior(zf)
        u = r.rsample(self.k)                                                  # [k, N, inner]
        log_pz_u = self.decode(u).log_prob_per_dim(zf.unsqueeze(0)).sum(-1)     # [k, N]
        log_w = log_pz_u + self._log_standard_normal(u) - r.log_prob_per_dim(u).sum(-1)
        return (torch.logsumexp(log_w, 0) - math.log(self.k)).reshape(lead)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """u ~ N(0, I), z ~ p(z|u)."""
        a = self._anchor
        u = torch.randn((n, self.inner), generator=generator, device=a.device, dtype=a.dtype)
        with torch.no_grad():
            p = self.decode(u)
            eps = torch.randn(p.mean.shape, generator=generator, device=a.device, dtype=a.dtype)
            z = p.mean + p.stddev * eps
        return z.reshape(n, *self.latent_shape)

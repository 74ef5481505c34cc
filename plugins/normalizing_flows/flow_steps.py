"""The steps of a flow posterior, each with its per-sample (amortised) parameters bound.

A step maps z ``[..., B, D]`` to (f(z), log |det df/dz| ``[..., B]``), in nats; its parameters
are ``[B, ...]`` (one set per data point, computed from x by the encoder) and broadcast over any
leading sample dimensions.

    planar   f(z) = z + u^ h(w^T z + b),  h = tanh                      Rezende & Mohamed 2015, eq. 10
             log|det| = log|1 + u^T psi(z)|,  psi = h'(w^T z + b) w        eq. 11-12
             u^ = u + (m(w^T u) - w^T u) w / |w|^2,  m(a) = -1 + softplus(a): w^T u^ > -1, so f is invertible
             (appendix A), but its inverse has no closed form.
    radial   f(z) = z + beta h(alpha, r) (z - z0),  r = |z - z0|,  h = 1 / (alpha + r)    eq. 14
             log|det| = (D - 1) log(1 + beta h) + log(1 + beta h + beta h'(r) r)
                      = (D - 1) log(1 + beta h) + log(1 + beta alpha h^2)
             alpha > 0 (softplus), beta = -alpha + softplus(beta~) >= -alpha: invertible (appendix A),
             no closed-form inverse.
    iaf      (m, s) = MADE(z; h),  sigma = sigmoid(s + forget_bias),  f(z) = sigma z + (1 - sigma) m
             log|det| = sum_i log sigma_i           Kingma et al. 2016, eq. 13-14 and Algorithm 1;
             invertible given the context h: z_i = (f_i - (1 - sigma_i) m_i) / sigma_i, where
             (m_i, sigma_i) depend on z_<i only, so D passes recover z exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .made import MADE


def _per_sample(t: Tensor) -> Tensor:
    """[B] -> [B, 1] so it broadcasts against z [..., B, D]."""
    return t.unsqueeze(-1)


@dataclass
class Planar:
    """f(z) = z + u_hat tanh(w^T z + b) with per-sample u_hat, w ``[B, D]`` and b ``[B]``."""

    u_hat: Tensor
    w: Tensor
    b: Tensor

    @staticmethod
    def from_raw(raw: Tensor, dim: int) -> "Planar":
        """Network output ``[B, 2D + 1]`` -> the constrained step (w^T u_hat > -1)."""
        u, w, b = raw[:, :dim], raw[:, dim:2 * dim], raw[:, 2 * dim]
        wu = (w * u).sum(-1, keepdim=True)
        u_hat = u + (F.softplus(wu) - 1 - wu) * w / (w ** 2).sum(-1, keepdim=True).clamp(min=1e-12)
        return Planar(u_hat, w, b)

    def __call__(self, z: Tensor) -> tuple[Tensor, Tensor]:
        t = torch.tanh((z * self.w).sum(-1) + self.b)                          # [..., B]
        out = z + self.u_hat * _per_sample(t)
        psi_u = (1 - t ** 2) * (self.w * self.u_hat).sum(-1)                   # u_hat^T psi(z)
        return out, torch.log((1 + psi_u).abs().clamp(min=1e-12))


@dataclass
class Radial:
    """f(z) = z + beta (z - z0) / (alpha + |z - z0|) with per-sample z0 ``[B, D]``, alpha, beta ``[B]``."""

    z0: Tensor
    alpha: Tensor
    beta: Tensor

    @staticmethod
    def from_raw(raw: Tensor, dim: int) -> "Radial":
        """Network output ``[B, D + 2]`` -> the constrained step (alpha > 0, beta >= -alpha)."""
        alpha = F.softplus(raw[:, dim])
        return Radial(raw[:, :dim], alpha, -alpha + F.softplus(raw[:, dim + 1]))

    def __call__(self, z: Tensor) -> tuple[Tensor, Tensor]:
        diff = z - self.z0
        r = diff.norm(dim=-1)
        h = 1 / (self.alpha + r)
        bh = self.beta * h
        out = z + _per_sample(bh) * diff
        d = z.shape[-1]
        return out, (d - 1) * torch.log1p(bh) + torch.log1p(self.beta * self.alpha * h ** 2)


@dataclass
class IAFStep:
    """f(z) = sigma z + (1 - sigma) m, (m, s) = MADE(z; context), sigma = sigmoid(s + forget_bias).

    ``made`` is the encoder's (shared) network; ``context`` ``[B, C]`` is h(x) per data point."""

    made: MADE
    context: Tensor
    forget_bias: float = 2.0

    def __post_init__(self) -> None:
        self._projected = None  # the context's first-layer term, computed once for every pass

    def _gate(self, z: Tensor) -> tuple[Tensor, Tensor]:
        if self._projected is None:
            self._projected = self.made.project_context(self.context)
        m, s = self.made(z, projected=self._projected.expand(*z.shape[:-1], self._projected.shape[-1])).chunk(2, -1)
        return m, s + self.forget_bias

    def __call__(self, z: Tensor) -> tuple[Tensor, Tensor]:
        m, s = self._gate(z)
        sigma = torch.sigmoid(s)
        return sigma * z + (1 - sigma) * m, F.logsigmoid(s).sum(-1)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """z with f(z) = y, given this step's context, and log |det df/dz| there: D passes, each
        fixing one more degree.  The last pass's gates saw z exact in every degree < D, which is
        all (m_i, sigma_i) depend on, so they are the gates at z: the log-det needs no extra pass."""
        z = torch.zeros_like(y)
        for _ in range(y.shape[-1]):
            m, s = self._gate(z)
            sigma = torch.sigmoid(s)
            z = (y - (1 - sigma) * m) / sigma
        return z, F.logsigmoid(s).sum(-1)

    @staticmethod
    def cat(parts: list["IAFStep"]) -> "IAFStep":
        return IAFStep(parts[0].made, torch.cat([p.context for p in parts]), parts[0].forget_bias)

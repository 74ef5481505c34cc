"""Improved DDPM training objectives (Nichol & Dhariwal 2021, "Improved Denoising Diffusion
Probabilistic Models", sec. 3.1-3.3) as pure functions, and the importance sampler of timesteps.

All losses are per image; ``D`` is the number of dimensions of x_0; t is the 0-based step index
(code index i = paper step t - 1, as in :mod:`.schedule`).

    L_simple = E_t,eps ||eps - eps_theta(x_t, t)||^2 / D                                  (eq. 14)
    L_vlb    = L_T + sum_t L_t, estimated at one t per image:  L_T + L_t / p(t)          (eq. 5)
    L_hybrid = L_simple + lambda L_vlb / D,  lambda = 0.001, with the mean of p(x_{t-1}|x_t)
               computed from a stopped eps (L_vlb trains the variances v only)             (eq. 16)

Units: ``simple_loss`` is a squared error per dimension; ``vlb_estimate`` is in nats per image
(the unbiased one-sample estimate of the bound); the hybrid adds ``lambda * L_vlb / D`` (nats
per dimension) to L_simple.  (Their code measures L_vlb in bits per dimension; with nats the same
lambda weighs the variance term 1 / ln 2 = 1.44 times more.)

Importance sampling (sec. 3.3): p(t) proportional to sqrt(E[L_t^2]) over the last 10 values of
each L_t, uniform until every step has 10; mixed with 0.1% of the uniform so that no step has
p(t) = 0 (the estimate L_t / p(t) then stays unbiased for every t).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["simple_loss", "vlb_estimate", "hybrid_loss", "ImportanceSampler"]


def simple_loss(eps: Tensor, noise: Tensor) -> Tensor:
    """L_simple per image: the mean over dimensions of (eps_theta - eps)^2 (units: squared noise)."""
    return (eps - noise).pow(2).flatten(1).mean(1)


def vlb_estimate(term: Tensor, prior: Tensor, p_t: Tensor) -> Tensor:
    """Unbiased one-sample estimate of the bound L = L_T + sum_t L_t (nats per image): L_T + L_t / p(t),
    ``term`` the L_t of the t drawn with probability ``p_t`` (1 / T under uniform sampling)."""
    return prior + term / p_t


def hybrid_loss(simple: Tensor, vlb: Tensor, dims: int, vlb_weight: float = 0.001) -> Tensor:
    """L_hybrid per image = L_simple + lambda L_vlb / D (eq. 16; ``vlb`` in nats per image, computed with a
    stopped mean so that it trains the variances only)."""
    return simple + vlb_weight * vlb / dims


class ImportanceSampler(nn.Module):
    """Timesteps t ~ p(t) proportional to sqrt(E[L_t^2]) over a history of ``history`` values per step
    (Nichol & Dhariwal sec. 3.3); uniform until the history is full.  The history is not part of the
    weights (``persistent=False``): a resumed run fills it again."""

    def __init__(self, num_timesteps: int, history: int = 10, uniform: float = 0.001):
        super().__init__()
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        if not 0 < uniform <= 1:
            raise ValueError(f"uniform must be in (0, 1], got {uniform}")
        self.num_timesteps, self.history, self.uniform = int(num_timesteps), int(history), float(uniform)
        self.register_buffer("values", torch.zeros(num_timesteps, history, dtype=torch.float64), persistent=False)
        self.register_buffer("counts", torch.zeros(num_timesteps, dtype=torch.long), persistent=False)

    @property
    def warm(self) -> bool:
        return bool((self.counts >= self.history).all())

    def probabilities(self) -> Tensor:
        """p(t), float64 [T], summing to 1."""
        T = self.num_timesteps
        if not self.warm:
            return torch.full((T,), 1.0 / T, dtype=torch.float64, device=self.values.device)
        w = self.values.pow(2).mean(1).sqrt()
        if not bool(w.sum() > 0):
            return torch.full((T,), 1.0 / T, dtype=torch.float64, device=self.values.device)
        return (1.0 - self.uniform) * w / w.sum() + self.uniform / T

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(t [n] long, p(t) [n] float64): n timesteps drawn with replacement from p."""
        p = self.probabilities()
        t = torch.multinomial(p.cpu(), n, replacement=True, generator=generator).to(self.values.device)
        return t, p[t]

    @torch.no_grad()
    def update(self, t: Tensor, terms: Tensor) -> None:
        """Append the observed L_t (nats per image) to each step's history (oldest dropped)."""
        for step, value in zip(t.tolist(), terms.detach().double().tolist()):
            c = int(self.counts[step])
            if c < self.history:
                self.values[step, c] = value
            else:
                self.values[step] = torch.cat([self.values[step, 1:], self.values.new_tensor([value])])
            self.counts[step] = c + 1

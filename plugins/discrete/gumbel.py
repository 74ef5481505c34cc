"""Gumbel-softmax (relaxed categorical) VAE (Jang et al. 2017; Maddison et al. 2017's Concrete).

    q(z|x) = prod_l Cat(z_l; pi_l(x))       z one-hot ``[K, *positions]`` (``latent: {shape: [K, N]}``)

A stochastic discrete posterior whose rate is the *exact* categorical KL: with a factorised
categorical prior (``categorical-codes``, uniform or learned) the prior's closed-form
cross-entropy and q's entropy give

    KL(q || p) = sum_l sum_k pi_lk (log pi_lk - log p_lk)            (uniform p: L log K - H[q])

The decoder sees relaxed samples while the model is in training mode (Jang et al. eq. 2):

    y_lk = exp((log pi_lk + g_lk) / tau) / sum_j exp((log pi_lj + g_lj) / tau),   g ~ Gumbel(0, 1)

(``hard: true``: the straight-through variant, the forward value one_hot(argmax y), the gradient
of y).  tau = max(min_temperature, temperature * exp(-anneal_rate * step)), step counting the
training-mode encoder calls (Jang et al. section 4's schedule; a buffer, so a resumed run continues
it).  In eval mode -- every number ``zoo diagnose`` and the trainer report -- rsample draws exact
one-hot samples (Gumbel-max), so the distortion is an unbiased estimate of the discrete model's
-E_q log p(x|z), log q(z|x) is the categorical mass, the IWAE bound is a bound on the discrete
model's log p(x), and the aggregate posterior (cross_log_prob) is exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo import contracts as c
from zoo_plugins.basic.layers import activation as act_layer
from zoo_plugins.basic.layers import mlp, numel

from .codes import code_shape


def gumbel_noise(shape, like: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """g = -log(-log U), U ~ Uniform(0, 1)."""
    u = torch.rand(shape, device=like.device, dtype=like.dtype, generator=generator)
    tiny = torch.finfo(like.dtype).tiny
    exponential = -torch.log(u.clamp(min=tiny))              # Exp(1)
    return -torch.log(exponential.clamp(min=tiny))


@dataclass
class GumbelPosterior:
    """prod_l Cat(z_l; softmax(logits_l)): logits ``[B, K, *positions]`` (the code axis is dim 1)."""

    logits: Tensor
    temperature: float = 1.0
    relaxed: bool = False
    hard: bool = False

    def __post_init__(self) -> None:
        self.logits = torch.log_softmax(self.logits, 1)

    @property
    def probs(self) -> Tensor:
        return self.logits.exp()

    @property
    def mean(self) -> Tensor:
        """E_q[z] of the discrete latent: the probabilities, ``[B, K, *positions]``."""
        return self.probs

    def rsample(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Relaxed (training mode) or exact one-hot (eval mode) samples, ``[B, K, *pos]`` or ``[n, B, K, *pos]``."""
        shape = self.logits.shape if n is None else (n, *self.logits.shape)
        axis = len(shape) - self.logits.dim() + 1
        perturbed = self.logits + gumbel_noise(shape, self.logits, generator)
        hard = F.one_hot(perturbed.argmax(axis), self.logits.shape[1]).movedim(-1, axis).to(self.logits.dtype)
        if not self.relaxed:
            return hard                                              # Gumbel-max: an exact categorical sample
        y = torch.softmax(perturbed / self.temperature, axis)
        return hard - y.detach() + y if self.hard else y

    sample = rsample

    def log_prob(self, z: Tensor) -> Tensor:
        """log q(z|x) = sum_l sum_k z_lk log pi_lk for one-hot z ``[..., B, K, *pos]`` -> ``[..., B]``.

        A relaxed (non-one-hot) sample has no categorical mass: refused."""
        if not bool(((z == 0) | (z == 1)).all()):
            raise ValueError("log q(z|x) of a relaxed Gumbel-softmax sample is not the categorical mass: score "
                             "one-hot z (eval mode, or hard: true)")
        return (z * self.logits).flatten(z.dim() - self.logits.dim() + 1).sum(-1)

    def entropy(self) -> Tensor:
        """H[q] = -sum_l sum_k pi_lk log pi_lk, ``[B]``."""
        return -(self.probs * self.logits).flatten(1).sum(-1)

    def cross_log_prob(self, z: Tensor, chunk: int = 4096) -> Tensor:
        """log q(z_m | x_b) for every pair: one-hot z ``[M, K, *pos]`` -> ``[M, B]``."""
        table = self.logits.flatten(1)
        return torch.cat([zc @ table.T for zc in z.flatten(1).split(chunk)])

    @staticmethod
    def cat(parts: list["GumbelPosterior"]) -> "GumbelPosterior":
        p = parts[0]
        return GumbelPosterior(torch.cat([q.logits for q in parts]), p.temperature, p.relaxed, p.hard)


class GumbelEncoder(nn.Module):
    """Flatten -> MLP -> logits of K codes at each position -> a Gumbel-softmax posterior."""

    posterior_type = GumbelPosterior
    family = "vae"
    test_shapes = {"latent_shape": (3, 2)}  # two 3-way categorical latents
    zoo_test_components = {"prior": {"name": "categorical-codes"}}

    def __init__(self, *, data_shape, latent_shape, hidden: list[int] = (256,), temperature: float = 1.0,
                 min_temperature: float = 0.5, anneal_rate: float = 0.0, hard: bool = False,
                 activation: str = "relu"):
        super().__init__()
        code_shape(latent_shape, "the gumbel encoder")
        if not temperature > 0 or not 0 < min_temperature <= temperature:
            raise ValueError(f"the gumbel encoder needs 0 < min_temperature <= temperature, got "
                             f"{min_temperature} and {temperature}")
        hidden = list(hidden)
        self.latent_shape = tuple(latent_shape)
        self.body = nn.Sequential(nn.Flatten(), mlp([numel(data_shape), *hidden], activation), act_layer(activation),
                                  nn.Linear(hidden[-1], numel(latent_shape)))
        self.temperature0, self.min_temperature = float(temperature), float(min_temperature)
        self.anneal_rate, self.hard = float(anneal_rate), bool(hard)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    @property
    def temperature(self) -> float:
        """tau = max(min_temperature, temperature * exp(-anneal_rate * step))."""
        return max(self.min_temperature, self.temperature0 * math.exp(-self.anneal_rate * int(self.step)))

    def bind(self, model) -> None:
        prior = model.prior
        if not (c.has(prior, c.DiscreteSupport) and c.has(prior, c.ClosedFormCrossEntropy)):
            raise ValueError(f"the gumbel encoder's rate is the exact categorical KL: the prior must be a "
                             f"factorised categorical with cross_entropy(q) and support() (e.g. categorical-codes), "
                             f"not {type(prior).__name__}")
        settings = model.objective_settings
        if settings is not None and settings.iwae_k > 1 and not self.hard:
            raise ValueError("objective.iwae_k > 1 scores log q(z|x) of the training samples, which relaxed "
                             "Gumbel-softmax samples do not have: set the encoder's hard: true (straight-through)")

    def forward(self, x: Tensor) -> GumbelPosterior:
        logits = self.body(x).reshape(x.shape[0], *self.latent_shape)
        q = GumbelPosterior(logits, self.temperature, relaxed=self.training, hard=self.hard)
        if self.training:
            self.step += 1
        return q

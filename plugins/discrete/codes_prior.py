"""Priors over a grid of discrete codes: z one-hot of shape ``[K, *positions]`` (K codes at each of L positions).

The latent convention of the discrete families (VQ-VAE, :mod:`vq`; Gumbel-softmax VAE,
:mod:`gumbel`): the first latent axis is the code (one-hot), the rest are positions, e.g.
``latent: {shape: [32, 7, 7]}`` is a 7 x 7 grid over a 32-entry codebook, ``[10, 20]`` twenty
10-way categorical variables.

    categorical-codes      p(z) = prod_l Cat(z_l; pi_l) with learned logits per position, starting
                           uniform (default, as the ``categorical`` prior learns its weights), or
                           fixed uniform pi = 1/K (``learn_weights: false``, as in van den Oord et
                           al. 2017 and Jang et al. 2017).  Closed-form cross-entropy to a factorised
                           categorical q: -E_q log p(z) = -sum_l sum_k q_lk log pi_lk, so the KL is
                           exact; uniform: L log K - H[q].
    autoregressive-codes   p(z) = prod_l Cat(z_l; softmax(f_l(z_<l))), f a MADE over the positions
                           in raster order (:mod:`made`): the learned prior of a VQ-VAE (the paper
                           fits a PixelCNN over the code grid; a MADE is the same factorisation
                           with an MLP).  Exact log p(z); no closed-form KL to a stochastic q (the gumbel
                           encoder refuses it), the exact rate -log p(k(x)) for a VQ posterior.

Both have ``support()`` (every one of the K^L grids, for small grids), so the conformance kit
checks normalisation exactly, and both define the VQ-VAE training loss (``objective: {loss:
vqvae}``, :func:`vq.vqvae_loss`) through ``training_loss`` (zoo.contracts.SurrogateLoss).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo_plugins.normalizing_flows.made import MADE

from .codes import code_shape, index_to_one_hot
from .vq import vqvae_loss

MAX_SUPPORT = 2 ** 16


def all_grids(k: int, positions: tuple[int, ...], like: Tensor) -> Tensor:
    """Every one-hot grid, ``[K^L, K, *positions]`` (refused above ``MAX_SUPPORT`` values)."""
    length = math.prod(positions)
    if k ** length > MAX_SUPPORT:
        raise ValueError(f"the support has K^L = {k}^{length} values, too many to enumerate (at most {MAX_SUPPORT})")
    idx = torch.cartesian_prod(*[torch.arange(k, device=like.device)] * length) if length > 1 else \
        torch.arange(k, device=like.device)[:, None]
    return index_to_one_hot(idx.reshape(-1, *positions), k, like.dtype, len(positions))


class _CodesPrior(nn.Module):
    """What both code priors share: shapes, the support and the VQ-VAE training loss."""

    exact = True

    def __init__(self, latent_shape, what: str):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        self.num_codes, self.positions = code_shape(latent_shape, what)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def code_axis(self, z: Tensor) -> int:
        return z.dim() - len(self.latent_shape)

    def support(self) -> Tensor:
        """Every grid of codes, ``[K^L, K, *positions]`` (small grids only): exp(log_prob) sums to 1 over it."""
        return all_grids(self.num_codes, self.positions, self._anchor)

    def training_loss(self, q, loss: str):
        """``objective: {loss: vqvae}``: the VQ-VAE loss (van den Oord et al. eq. 3), see :func:`vq.vqvae_loss`."""
        return vqvae_loss(self, q, loss)


class CategoricalCodes(_CodesPrior):
    """p(z) = prod_l Cat(z_l; pi_l): learned per-position logits (from uniform), or uniform (``learn_weights: false``)."""

    # the conformance kit's small model: a Gumbel-softmax encoder (exact categorical KL)
    zoo_test_components = {"encoder": {"name": "gumbel", "hidden": [16]}}

    def __init__(self, *, latent_shape, data_shape=None, learn_weights: bool = True):
        super().__init__(latent_shape, "the categorical-codes prior")
        self.logits = nn.Parameter(torch.zeros(self.latent_shape)) if learn_weights else None

    def log_weights(self, like: Tensor) -> Tensor:
        """log pi, ``[K, *positions]`` (-log K everywhere for the uniform prior)."""
        if self.logits is None:
            return torch.full(self.latent_shape, -math.log(self.num_codes), device=like.device, dtype=like.dtype)
        return torch.log_softmax(self.logits, 0)

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) = sum_l sum_k z_lk log pi_lk for one-hot z, nats; any leading dimensions."""
        return (z * self.log_weights(z)).flatten(self.code_axis(z)).sum(-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        logw = self.log_weights(self._anchor).detach()
        probs = logw.exp().movedim(0, -1).reshape(-1, self.num_codes)                 # [L, K]
        idx = torch.multinomial(probs, n, replacement=True, generator=generator).T      # [n, L]
        return index_to_one_hot(idx.reshape(n, *self.positions), self.num_codes, self._anchor.dtype,
                                len(self.positions))

    def cross_entropy(self, q) -> Tensor:
        """-E_q[log p(z)] = -sum_l sum_k q_lk log pi_lk for a factorised categorical q (``q.probs``), ``[B]``."""
        return -(q.probs * self.log_weights(q.probs)).flatten(1).sum(-1)

    def kl_per_dim(self, q) -> Tensor:
        """Each (code, position) entry's share q_lk (log q_lk - log pi_lk) of the KL, ``[B, K, *positions]``."""
        probs = q.probs
        return torch.xlogy(probs, probs) - probs * self.log_weights(probs)


class AutoregressiveCodes(_CodesPrior):
    """p(z) = prod_l Cat(z_l | z_<l) with the conditionals from one MADE pass (positions in raster order)."""

    # the conformance kit's small model: the exact categorical posterior of a one-position latent
    zoo_test_components = {"encoder": {"name": "gmm-posterior"}, "decoder": {"name": "gmm"}}
    notes = {"kl_per_dim": "not defined: an autoregressive prior does not factorise over positions "
                           "(the rate is sum_l -log p(k_l | k_<l))"}

    def __init__(self, *, latent_shape, data_shape=None, hidden: list[int] = (256,), activation: str = "relu"):
        super().__init__(latent_shape, "the autoregressive-codes prior")
        length = math.prod(self.positions)
        degrees = torch.arange(1, length + 1).repeat_interleave(self.num_codes)       # position l's K entries: l + 1
        self.made = MADE(degrees, degrees, list(hidden), activation=activation, zero_last=True)
        self.length = length

    def _flat(self, z: Tensor) -> Tensor:
        """One-hot ``[..., K, *positions]`` -> ``[..., L * K]``, position-major."""
        axis = self.code_axis(z)
        return z.movedim(axis, -1).reshape(*z.shape[:axis], self.length * self.num_codes)

    def conditionals(self, z: Tensor) -> Tensor:
        """log p(z_l = k | z_<l) for every position and code, ``[..., L, K]``."""
        logits = self.made(self._flat(z))
        return torch.log_softmax(logits.reshape(*logits.shape[:-1], self.length, self.num_codes), -1)

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) = sum_l log p(z_l | z_<l), nats; any leading dimensions."""
        lead = z.shape[: self.code_axis(z)]
        flat = self._flat(z).reshape(*lead, self.length, self.num_codes)
        return (flat * self.conditionals(z)).sum((-1, -2))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Ancestral sampling, one position per MADE pass (L passes)."""
        z = torch.zeros((n, *self.latent_shape), device=self._anchor.device, dtype=self._anchor.dtype)
        idx = torch.zeros((n, self.length), dtype=torch.long, device=z.device)
        with torch.no_grad():
            for l in range(self.length):
                probs = self.conditionals(z)[:, l].exp()
                idx[:, l] = torch.multinomial(probs, 1, generator=generator)[:, 0]
                z = index_to_one_hot(idx.reshape(n, *self.positions), self.num_codes, z.dtype, len(self.positions))
        return z

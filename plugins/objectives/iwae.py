"""The IWAE variants of Rainforth et al. 2018 (card ``objective: {name: miwae | ciwae | piwae, ...}``).

With K importance samples z_k ~ q(z|x) and weights log w_k = log p(x|z_k) + beta [log p(z_k) - log q(z_k|x)]
(beta = 1: the bounds on log p(x) below; :meth:`zoo.model.LatentModel.log_weights` computes them):

    IWAE_K   = log 1/K sum_k w_k                                   (Burda et al. 2015)
    MIWAE    = 1/M sum_m log 1/K sum_k w_mk          M x K samples  (Rainforth et al. 2018, eq. 3)
    CIWAE    = beta ELBO + (1 - beta) IWAE_K         same K samples (eq. 4; beta here is the mixing weight)
    PIWAE    : the decoder and prior ascend IWAE_{M K}, the encoder ascends MIWAE_{M,K} (section 4)

Each bound is a pure function of the ``[.., B]`` log weights, nats per image.  The K-sample IWAE itself,
and its doubly-reparameterised gradient (DReG), are the built-in ``objective: {iwae_k: K, gradient: dreg}``.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor

from zoo.model import ELBO


def iwae_bound(log_w: Tensor) -> Tensor:
    """log 1/K sum_k w_k for log weights ``[K, B]`` -> ``[B]``, nats."""
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


def miwae_bound(log_w: Tensor) -> Tensor:
    """1/M sum_m log 1/K sum_k w_mk for log weights ``[M, K, B]`` -> ``[B]``, nats (Rainforth et al. eq. 3)."""
    return (torch.logsumexp(log_w, 1) - math.log(log_w.shape[1])).mean(0)


def ciwae_bound(log_w: Tensor, beta: float) -> Tensor:
    """beta * 1/K sum_k log w_k + (1 - beta) * IWAE_K for log weights ``[K, B]`` -> ``[B]``, nats (eq. 4)."""
    return beta * log_w.mean(0) + (1 - beta) * iwae_bound(log_w)


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _weights(model: Any, x: Tensor, n: int, beta: float) -> tuple[Tensor, Tensor, Tensor]:
    """n samples' log w ``[n, B]`` (with the KL weight beta), log p(x|z) and log p(z)/q(z|x)."""
    log_lik, log_ratio = model.log_weights(x, n)
    return log_lik + beta * log_ratio, log_lik, log_ratio


def _terms(log_lik: Tensor, log_ratio: Tensor, key: str, bound: Tensor) -> ELBO:
    """The sample-average ELBO terms (for logging) and the bound in ``extras[key]``."""
    return ELBO((log_lik + log_ratio).mean(0), -log_lik.mean(0), -log_ratio.mean(0), {key: bound})


class MIWAE:
    """MIWAE(M, K): M independent K-sample IWAE bounds averaged; M = 1 is IWAE_K, K = 1 the M-sample ELBO."""

    def __init__(self, *, data_shape: Sequence[int], latent_shape: Sequence[int], M: int = 8, K: int = 8,
                 beta: float = 1.0):
        self.m, self.k, self.beta = _count(M, "M"), _count(K, "K"), float(beta)

    def __call__(self, model: Any, x: Tensor) -> tuple[Tensor, ELBO]:
        log_w, log_lik, log_ratio = _weights(model, x, self.m * self.k, self.beta)
        bound = miwae_bound(log_w.reshape(self.m, self.k, -1))
        return -bound.mean(), _terms(log_lik, log_ratio, "miwae", bound)


class CIWAE:
    """CIWAE(K, beta): the convex combination beta ELBO + (1 - beta) IWAE_K of the same K samples;
    ``beta`` is the mixing weight in [0, 1] (1: the ELBO, 0: IWAE_K), as in Rainforth et al."""

    def __init__(self, *, data_shape: Sequence[int], latent_shape: Sequence[int], K: int = 64, beta: float = 0.5):
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta <= 1:
            raise ValueError(f"beta (CIWAE's mixing weight) must be in [0, 1], got {beta!r}")
        self.k, self.beta = _count(K, "K"), float(beta)

    def __call__(self, model: Any, x: Tensor) -> tuple[Tensor, ELBO]:
        log_w, log_lik, log_ratio = _weights(model, x, self.k, 1.0)
        bound = ciwae_bound(log_w, self.beta)
        return -bound.mean(), _terms(log_lik, log_ratio, "ciwae", bound)


class PIWAE:
    """PIWAE(M, K): the decoder and prior maximise IWAE_{M K}; the encoder (a coupled parameter set,
    zoo.contracts.CoupledObjective, with its own optimiser of the run's class) maximises MIWAE(M, K) of
    fresh samples, stepped after the main step on the same batch."""

    def __init__(self, *, data_shape: Sequence[int], latent_shape: Sequence[int], M: int = 8, K: int = 8,
                 beta: float = 1.0, encoder_lr: float | None = None):
        self.m, self.k, self.beta = _count(M, "M"), _count(K, "K"), float(beta)
        self.encoder_lr = encoder_lr

    def __call__(self, model: Any, x: Tensor) -> tuple[Tensor, ELBO]:
        log_w, log_lik, log_ratio = _weights(model, x, self.m * self.k, self.beta)
        bound = iwae_bound(log_w)
        return -bound.mean(), _terms(log_lik, log_ratio, "iwae", bound)

    def coupled_parameters(self, model: Any) -> dict[str, dict[str, Any]]:
        options: dict[str, Any] = {"params": list(model.encoder.parameters())}
        if self.encoder_lr is not None:
            options["lr"] = float(self.encoder_lr)
        return {"inference": options}

    def coupled_loss(self, name: str, model: Any, x: Tensor) -> Tensor:
        log_w, _, _ = _weights(model, x, self.m * self.k, self.beta)
        return -miwae_bound(log_w.reshape(self.m, self.k, -1)).mean()

"""Disentangling objectives (card ``objective: {name: ...}``): beta-TCVAE, FactorVAE, DIP-VAE-I/II.

Each is a zoo.contracts.Objective, ``objective(model, x) -> (loss, ELBO terms)`` with x in the likelihood's
data space; the penalties are pure functions of tensors below, in nats, beside the paper's equation.
The model's ``elbo`` (and so ``zoo diagnose``) still reports the true bound of the trained model; diagnose
also reports the rate split into index-code MI, total correlation and dimension-wise KL for every
diagonal-Gaussian posterior (zoo.decomposition), which is what these objectives act on.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo import contracts as c
from zoo.decomposition import minibatch_log_weights, mixture_log_density, mss_log_weights, tc_terms
from zoo.model import ELBO


def _sampled_terms(model: Any, x: Tensor):
    """q(z|x), z ~ q, log p(x|z), and the model's rate KL(q||p) (closed form where the prior has it), [B]."""
    q = model.posterior(x)
    z, rate, _ = model.rate(q)
    log_lik = model.decoder(z).log_prob(x)
    return q, z, log_lik, rate


def _weight(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


# ------------------------------------------------------------------------------------ beta-TCVAE

class BetaTCVAE:
    """beta-TCVAE (Chen et al. 2018, eq. 4): minimise, per sample (nats),

        -log p(x|z) + alpha * [log q(z|x) - log q(z)] + beta * [log q(z) - sum_d log q(z_d)]
                    + gamma * [sum_d log q(z_d) - log p(z)],              z ~ q(z|x)

    with log q(z) and log q(z_d) estimated on the minibatch: ``estimator: mss`` the minibatch-stratified
    weights (appendix C.2, needs ``dataset_size``, the number of training images), ``mws`` the
    minibatch-weighted ones (C.1).  alpha = beta = gamma = 1 is the ELBO (the three terms sum to the
    one-sample rate).  Needs a posterior with ``cross_log_prob_per_dim`` (zoo.contracts.PerDimAggregatePosterior)."""

    def __init__(self, *, data_shape: Sequence[int], latent_shape: Sequence[int], alpha: float = 1.0,
                 beta: float = 6.0, gamma: float = 1.0, dataset_size: int | None = None, estimator: str = "mss"):
        self.alpha, self.beta, self.gamma = (_weight(v, k) for k, v in
                                             (("alpha", alpha), ("beta", beta), ("gamma", gamma)))
        if estimator not in ("mss", "mws"):
            raise ValueError(f"estimator must be 'mss' (minibatch-stratified) or 'mws' (minibatch-weighted), "
                             f"got {estimator!r}")
        if isinstance(dataset_size, bool) or not isinstance(dataset_size, int) or dataset_size < 2:
            raise ValueError(f"dataset_size (the number of training images, for log q(z) on a minibatch) must be "
                             f"an integer >= 2, got {dataset_size!r}")
        self.dataset_size, self.estimator = dataset_size, estimator

    def split(self, q: Any, z: Tensor, log_q_own: Tensor, log_pz: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample (index-code MI, TC, dimension-wise KL) of the batch's z ``[B, ...]``, nats."""
        if not c.has(q, c.PerDimAggregatePosterior):
            raise TypeError(f"beta-TCVAE needs a posterior with cross_log_prob_per_dim "
                            f"(zoo.contracts.PerDimAggregatePosterior); {type(q).__name__} has none")
        b = z.shape[0]
        cross = q.cross_log_prob_per_dim(z)                                     # [B(z), B(x), D]
        weights = (mss_log_weights if self.estimator == "mss" else minibatch_log_weights)(
            b, max(self.dataset_size, b), device=z.device, dtype=cross.dtype)
        log_qz, log_marginals = mixture_log_density(cross, weights)
        return tc_terms(log_q_own, log_qz, log_marginals, log_pz)

    def __call__(self, model: Any, x: Tensor) -> tuple[Tensor, ELBO]:
        q = model.posterior(x)
        z = q.rsample()
        log_lik = model.decoder(z).log_prob(x)
        log_q, log_p = q.log_prob(z), model.prior.log_prob(z)
        mi, tc, dwkl = self.split(q, z, log_q, log_p)
        loss = (-log_lik + self.alpha * mi + self.beta * tc + self.gamma * dwkl).mean()
        rate = log_q - log_p
        return loss, ELBO(log_lik - rate, -log_lik, rate,
                          {"index_code_mi": mi, "total_correlation": tc, "dimension_wise_kl": dwkl})


# ------------------------------------------------------------------------------------- FactorVAE

def permute_dims(z: Tensor) -> Tensor:
    """Each latent dimension of ``z`` ``[B, D]`` shuffled independently over the batch: samples of
    prod_d q(z_d) (Kim & Mnih 2018, algorithm 1)."""
    return torch.stack([z[torch.randperm(z.shape[0], device=z.device), d] for d in range(z.shape[1])], 1)


def discriminator_loss(logits_q: Tensor, logits_perm: Tensor) -> Tensor:
    """Binary cross-entropy of D(z) = sigmoid(logit) telling z ~ q(z) (label 1) from permuted z (label 0),
    per pair of samples, nats: -log D(z) - log(1 - D(z_perm))  (Kim & Mnih 2018, eq. 3)."""
    return F.softplus(-logits_q) + F.softplus(logits_perm)


class FactorVAE(nn.Module):
    """FactorVAE (Kim & Mnih 2018, eq. 2): per sample (nats)

        -log p(x|z) + beta * KL(q(z|x) || p(z)) + gamma * log [D(z) / (1 - D(z))],    z ~ q(z|x)

    where the discriminator's logit log D/(1-D) estimates the total correlation KL(q(z) || prod_d q(z_d))
    (the density-ratio trick).  D is a second player (zoo.contracts.CoupledObjective): an MLP with its own
    optimiser (``discriminator_lr``; Kim & Mnih use Adam, lr 1e-4, betas (0.5, 0.9)), stepped after each
    VAE step on :func:`discriminator_loss` of fresh z ~ q(z|x) of the same batch and a dimension-wise
    permutation of a second draw.  Its weights are saved with the model."""

    def __init__(self, *, data_shape: Sequence[int], latent_shape: Sequence[int], gamma: float = 10.0,
                 beta: float = 1.0, hidden: Sequence[int] = (64, 64), discriminator_lr: float = 1e-4,
                 discriminator_betas: Sequence[float] | None = None):
        super().__init__()
        self.gamma, self.beta = _weight(gamma, "gamma"), _weight(beta, "beta")
        self.lr = _weight(discriminator_lr, "discriminator_lr")
        self.betas = tuple(discriminator_betas) if discriminator_betas is not None else None
        layers, width = [], math.prod(latent_shape)
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.LeakyReLU(0.2)]
            width = int(h)
        self.discriminator = nn.Sequential(*layers, nn.Linear(width, 1))

    def tc_logits(self, z: Tensor) -> Tensor:
        """log D(z)/(1 - D(z)) per sample ``[B]``: the discriminator's estimate of log q(z) / prod_d q(z_d)."""
        return self.discriminator(z.flatten(1)).squeeze(1)

    def forward(self, model: Any, x: Tensor) -> tuple[Tensor, ELBO]:
        _, z, log_lik, rate = _sampled_terms(model, x)
        tc = self.tc_logits(z)
        loss = (-log_lik + self.beta * rate + self.gamma * tc).mean()
        return loss, ELBO(log_lik - rate, -log_lik, rate, {"tc_estimate": tc.detach()})

    def coupled_parameters(self, model: Any) -> dict[str, dict[str, Any]]:
        options: dict[str, Any] = {"params": list(self.discriminator.parameters()), "lr": self.lr}
        if self.betas is not None:
            options["betas"] = self.betas
        return {"discriminator": options}

    def coupled_loss(self, name: str, model: Any, x: Tensor) -> Tensor:
        with torch.no_grad():
            q = model.posterior(x)
            z, z_other = q.rsample().flatten(1), q.rsample().flatten(1)
        return discriminator_loss(self.tc_logits(z), self.tc_logits(permute_dims(z_other))).mean()

    @torch.no_grad()
    def accuracy(self, z: Tensor) -> float:
        """The fraction of z ~ q(z) and of permuted z the discriminator classifies right."""
        zf = z.flatten(1)
        real, perm = self.tc_logits(zf) > 0, self.tc_logits(permute_dims(zf)) <= 0
        return float(torch.cat([real, perm]).double().mean())


# -------------------------------------------------------------------------------------- DIP-VAE

def covariance(v: Tensor) -> Tensor:
    """The batch covariance of ``v`` ``[B, D]`` (biased, 1/B), ``[D, D]``."""
    centred = v - v.mean(0, keepdim=True)
    return centred.T @ centred / v.shape[0]


def dip_penalty(cov: Tensor, lambda_od: float, lambda_d: float) -> Tensor:
    """lambda_od sum_{i != j} Cov_ij^2 + lambda_d sum_i (Cov_ii - 1)^2  (Kumar et al. 2018, eq. 6 and 8):
    a batch statistic (one number, nats as a weight on the per-sample loss), not a per-sample term."""
    diag = torch.diagonal(cov)
    off = cov - torch.diag_embed(diag)
    return lambda_od * (off ** 2).sum() + lambda_d * ((diag - 1) ** 2).sum()


class DIPVAE:
    """DIP-VAE (Kumar et al. 2018): the ELBO plus :func:`dip_penalty` on a covariance pushed to I:
    ``variant: i`` Cov_p(x)[E_q(z|x) z] (eq. 6, default lambda_d = 10 lambda_od),
    ``variant: ii`` Cov_q(z)[z] = E_x Cov_q(z|x) + Cov_x E_q z of the aggregate posterior (eq. 8, default
    lambda_d = lambda_od), over the minibatch: in closed form for a posterior with a diagonal covariance
    (zoo.contracts.DiagonalCovariance), else the covariance of z ~ q(z|x) of the batch."""

    def __init__(self, *, data_shape: Sequence[int], latent_shape: Sequence[int], variant: str = "i",
                 lambda_od: float = 10.0, lambda_d: float | None = None, beta: float = 1.0):
        if variant not in ("i", "ii"):
            raise ValueError(f"variant must be 'i' or 'ii', got {variant!r}")
        self.variant, self.beta = variant, _weight(beta, "beta")
        self.lambda_od = _weight(lambda_od, "lambda_od")
        default = 10 * self.lambda_od if variant == "i" else self.lambda_od
        self.lambda_d = default if lambda_d is None else _weight(lambda_d, "lambda_d")

    def penalised_covariance(self, q: Any, z: Tensor) -> Tensor:
        """The covariance the penalty acts on, ``[D, D]``."""
        if self.variant == "i":
            return covariance(q.mean.flatten(1))
        if c.has(q, c.DiagonalCovariance):
            return covariance(q.mean.flatten(1)) + torch.diag_embed(q.variance.flatten(1).mean(0))
        return covariance(z.flatten(1))

    def __call__(self, model: Any, x: Tensor) -> tuple[Tensor, ELBO]:
        q, z, log_lik, rate = _sampled_terms(model, x)
        penalty = dip_penalty(self.penalised_covariance(q, z), self.lambda_od, self.lambda_d)
        loss = (-log_lik + self.beta * rate).mean() + penalty
        return loss, ELBO(log_lik - rate, -log_lik, rate, {"dip_penalty": penalty.detach().expand(x.shape[0])})


dip_vae_i = functools.partial(DIPVAE, variant="i")     # the covariance of the posterior means
dip_vae_ii = functools.partial(DIPVAE, variant="ii")   # the covariance of the aggregate posterior

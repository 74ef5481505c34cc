"""Post-hoc priors: densities fitted to a trained model's latent codes (``zoo fit-prior RUN --prior NAME``).

Each fitter takes the codes z ``[N, D]`` (posterior means or samples of the aggregate posterior on the
training split, chosen by the core) and returns a registered prior with its card arguments and fitted
state (zoo.contracts.PriorFitter):

    gmm   a diagonal Gaussian mixture by EM (Ghosh et al. 2020, "From variational to deterministic
          autoencoders", section 4: ex-post density estimation) -> prior ``mixture-of-gaussians``
    maf   a masked autoregressive flow by maximum likelihood (Papamakarios et al. 2017) -> prior ``maf``
    vae   a second-stage VAE by its ELBO (Dai & Wipf 2019) -> prior ``two-stage-vae``

The more expressive the prior, the closer p(z) gets to the aggregate posterior q(z), and the smaller
the marginal KL(q(z) || p(z)) in the ELBO surgery rate = I_q(x;z) + KL(q(z) || p(z)) (Hoffman & Johnson
2016): refitting the prior with encoder and decoder fixed raises the ELBO by what it removes.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from zoo.contracts import FittedPrior, SamplerOption

from zoo_plugins.basic.priors import MixtureOfGaussians
from zoo_plugins.mixtures.gmm import diag_gmm_m_step
from zoo_plugins.normalizing_flows.maf import MAFPrior

from .second_stage import SecondStageVAEPrior

_STEPS = {"iters": SamplerOption(int, 1000, "optimiser steps (Adam)"),
          "lr": SamplerOption(float, 1e-3, "Adam learning rate"),
          "batch_size": SamplerOption(int, 256, "codes per optimiser step")}


class GMMFitter:
    """EM for p(z) = sum_k pi_k N(z; mu_k, diag sigma_k^2): means start at K distinct random codes, every
    variance at the codes' variance per dimension, weights uniform (as in :func:`zoo_plugins.gmm.init_from_data`)."""

    options = {"components": SamplerOption(int, 10, "mixture components K"),
               "iters": SamplerOption(int, 200, "EM iterations at most"),
               "tol": SamplerOption(float, 1e-6, "stop when an iteration gains less than this (nats per code)"),
               "reg_covar": SamplerOption(float, 1e-6, "added to every variance (as scikit-learn's reg_covar)")}

    @torch.no_grad()
    def __call__(self, z: Tensor, *, latent_shape, seed: int, components: int = 10, iters: int = 200,
                 tol: float = 1e-6, reg_covar: float = 1e-6) -> FittedPrior:
        if components < 1 or components > len(z):
            raise ValueError(f"--components must lie in [1, {len(z)}] (the number of codes), got {components}")
        zd = z.double().flatten(1)
        prior = MixtureOfGaussians(latent_shape=latent_shape, components=components).double()
        idx = torch.randperm(len(zd), generator=torch.Generator().manual_seed(seed))[:components]
        prior.means.copy_(zd[idx])
        prior.log_scales.copy_((0.5 * (zd.var(0, unbiased=False) + reg_covar).log()).expand_as(prior.means))
        prior.logits.zero_()
        history: list[float] = []
        for _ in range(iters):
            log_joint = prior.log_joint(zd)                                 # [N, K]
            log_pz = torch.logsumexp(log_joint, 1, keepdim=True)
            history.append(float(log_pz.mean()))
            if len(history) > 1 and history[-1] - history[-2] < tol:
                break
            log_w, means, log_var = diag_gmm_m_step((log_joint - log_pz).exp(), zd, reg_covar=reg_covar,
                                                    min_log_var=-math.inf)
            prior.logits.copy_(log_w)
            prior.means.copy_(means)
            prior.log_scales.copy_(0.5 * log_var)
        else:
            history.append(float(prior.log_prob(zd).mean()))
        return FittedPrior("mixture-of-gaussians", {"components": components}, prior.float(), history,
                           method=f"EM, {len(history) - 1} iterations, diagonal covariances, reg_covar {reg_covar}")


def _adam_fit(module: torch.nn.Module, objective, z: Tensor, *, seed: int, iters: int, lr: float,
              batch_size: int, log_every: int = 50) -> list[float]:
    """Maximise mean objective(z_batch) [nats per code] with Adam; the history is the full-set mean every ``log_every``."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    history: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for step in range(iters):
            batch = z[torch.randint(len(z), (min(batch_size, len(z)),), generator=g)]
            loss = -objective(batch).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % log_every == 0 or step == iters - 1:
                with torch.no_grad():
                    history.append(float(objective(z).mean()))
    return history


class MAFFitter:
    """Maximum likelihood for a MAF prior: mean log p(z) of the codes by Adam."""

    options = {"layers": SamplerOption(int, 4, "MADE layers"), "hidden": SamplerOption(int, 64, "units per layer"),
               "depth": SamplerOption(int, 2, "hidden layers per MADE"), **_STEPS}

    def __call__(self, z: Tensor, *, latent_shape, seed: int, layers: int = 4, hidden: int = 64, depth: int = 2,
                 iters: int = 1000, lr: float = 1e-3, batch_size: int = 256) -> FittedPrior:
        torch.manual_seed(seed)
        prior = MAFPrior(latent_shape=latent_shape, layers=layers, hidden=hidden, depth=depth)
        zf = z.reshape(len(z), *latent_shape).float()
        history = _adam_fit(prior, prior.log_prob, zf, seed=seed, iters=iters, lr=lr, batch_size=batch_size)
        return FittedPrior("maf", {"layers": layers, "hidden": hidden, "depth": depth}, prior.eval(), history,
                           method=f"maximum likelihood, Adam lr {lr}, {iters} steps of {batch_size} codes")


class VAEFitter:
    """A second-stage VAE on the codes by its ELBO (Dai & Wipf 2019)."""

    options = {"inner": SamplerOption(int, 0, "second-stage latent dims (0: as many as the codes)"),
               "hidden": SamplerOption(int, 64, "units of each of the two hidden layers"),
               "k": SamplerOption(int, 16, "importance samples of the prior's log_prob bound"), **_STEPS}

    def __call__(self, z: Tensor, *, latent_shape, seed: int, inner: int = 0, hidden: int = 64, k: int = 16,
                 iters: int = 1000, lr: float = 1e-3, batch_size: int = 256) -> FittedPrior:
        torch.manual_seed(seed)
        d = math.prod(latent_shape)
        args: dict[str, Any] = {"inner": inner or d, "hidden": [hidden, hidden], "k": k}
        prior = SecondStageVAEPrior(latent_shape=latent_shape, **args)
        history = _adam_fit(prior, prior.elbo, z.flatten(1).float(), seed=seed, iters=iters, lr=lr,
                            batch_size=batch_size)
        return FittedPrior("two-stage-vae", args, prior.eval(), history,
                           method=f"second-stage ELBO, Adam lr {lr}, {iters} steps of {batch_size} codes")


GMM = GMMFitter()
MAF = MAFFitter()
VAE = VAEFitter()

"""Gaussian mixture model as a latent-variable model: the seed's first example.

    p(z) = Cat(z; pi)                     z one-hot over K components (``latent: {shape: [K]}``)
    p(x|z = k) = N(x; mu_k, diag sigma_k^2)   a table of K means and log-scales (decoder ``gmm``)
    q(z|x) = p(z|x) = pi_k p(x|k) / sum_j pi_j p(x|j)   the exact posterior (encoder ``gmm-posterior``)

With the exact posterior the ELBO equals log p(x) (KL(q || p(z|x)) = 0); ``LatentModel`` sums
over the K components exactly (``OneHotCategorical.enumerate``), so gradient training of the
card's ELBO is maximum likelihood.  ``fit_em`` fits the same model by expectation-maximisation
(E-step: the posterior; M-step: closed-form weights, means and variances).
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.contracts import Observation
from zoo.likelihoods import Gaussian, make_likelihood


def _one_hot_dim(latent_shape, what: str) -> int:
    if len(tuple(latent_shape)) != 1:
        raise ValueError(f"{what} needs a one-hot latent of shape [K] (K components), got {list(latent_shape)}")
    return int(latent_shape[0])


@dataclass
class OneHotCategorical:
    """q(z|x) = Cat(probs) over one-hot vectors z in {e_1 .. e_K}; batch first, logits ``[B, K]``.

    Not reparameterisable: ``rsample`` returns one-hot samples without a gradient path (use the
    exact ``enumerate`` for the ELBO).  Offers what diagnostics need for a discrete latent:
    ``entropy``, ``cross_log_prob`` and ``cat`` (exact aggregate posterior split)."""

    logits: Tensor

    def __post_init__(self) -> None:
        self.logits = torch.log_softmax(self.logits, -1)

    @property
    def probs(self) -> Tensor:
        return self.logits.exp()

    @property
    def mean(self) -> Tensor:
        """E_q[z] = the responsibilities, ``[B, K]``."""
        return self.probs

    def enumerate(self) -> tuple[Tensor, Tensor]:
        """The support (K one-hot rows) and log q(z_k|x) for each, ``[K, K]`` and ``[B, K]``."""
        k = self.logits.shape[-1]
        return torch.eye(k, device=self.logits.device, dtype=self.logits.dtype), self.logits

    def rsample(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        probs = self.probs.detach()
        idx = torch.multinomial(probs, 1 if n is None else n, replacement=True, generator=generator)  # [B, n]
        z = F.one_hot(idx, probs.shape[-1]).to(probs.dtype)                                          # [B, n, K]
        return z[:, 0] if n is None else z.transpose(0, 1)

    sample = rsample

    def log_prob(self, z: Tensor) -> Tensor:
        """log q(z|x) for one-hot z ``[B, K]`` or ``[S, B, K]``."""
        return (z * self.logits).sum(-1)

    def entropy(self) -> Tensor:
        return -(self.probs * self.logits).sum(-1)

    def cross_log_prob(self, z: Tensor, chunk: int = 1024) -> Tensor:
        """log q(z_m | x_b) for every pair: one-hot z ``[M, K]`` -> ``[M, B]``."""
        return z @ self.logits.T

    def detach(self) -> "OneHotCategorical":
        return OneHotCategorical(self.logits.detach())

    def to(self, *args, **kwargs) -> "OneHotCategorical":
        return OneHotCategorical(self.logits.to(*args, **kwargs))

    def __getitem__(self, index) -> "OneHotCategorical":
        return OneHotCategorical(self.logits[index])

    @staticmethod
    def cat(parts: list["OneHotCategorical"]) -> "OneHotCategorical":
        return OneHotCategorical(torch.cat([p.logits for p in parts]))


class CategoricalPrior(nn.Module):
    """p(z) = Cat(pi) over one-hot z of shape [K], pi = softmax(logits) (learned unless ``learn_weights: false``)."""

    exact = True
    family = "gmm"
    # the conformance kit (zoo.testing) puts this prior into a model with these parts
    zoo_test_components = {"encoder": {"name": "gmm-posterior"}, "decoder": {"name": "gmm"}}

    def __init__(self, *, latent_shape, data_shape=None, learn_weights: bool = True):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        k = _one_hot_dim(latent_shape, "the categorical prior")
        self.logits = nn.Parameter(torch.zeros(k), requires_grad=learn_weights)

    @property
    def log_weights(self) -> Tensor:
        return torch.log_softmax(self.logits, 0)

    def log_prob(self, z: Tensor) -> Tensor:
        """log pi_k for one-hot z, any leading dimensions."""
        return (z * self.log_weights).sum(-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        idx = torch.multinomial(self.log_weights.detach().exp(), n, replacement=True, generator=generator)
        return F.one_hot(idx, self.logits.shape[0]).to(self.logits.dtype)

    def support(self) -> Tensor:
        """Every value z can take (K one-hot rows): log_prob sums to 1 over it."""
        return torch.eye(self.logits.shape[0], device=self.logits.device, dtype=self.logits.dtype)

    def cross_entropy(self, q: OneHotCategorical) -> Tensor:
        """-E_q[log p(z)] = -sum_k q_k log pi_k."""
        return -(q.probs * self.log_weights).sum(-1)

    def kl_per_dim(self, q: OneHotCategorical) -> Tensor:
        """Each component's share q_k (log q_k - log pi_k) of KL(q||p), [B, K] (sums to the rate)."""
        return q.probs * (q.logits - self.log_weights)


class GMMDecoder(nn.Module):
    """p(x|z) for one-hot z: a table of K likelihood parameter maps (means and log-scales).

    ``z @ table`` selects component k's parameters; the default likelihood is a Gaussian with a
    learned per-pixel scale (diagonal covariance), ``min_log_scale`` its variance floor."""

    family = "gmm"
    test_shapes = {"latent_shape": (3,)}
    zoo_test_components = {"encoder": {"name": "gmm-posterior"}, "prior": {"name": "categorical"}}

    def __init__(self, *, data_shape, latent_shape, likelihood: str | dict | None = None,
                 init_scale: float = 0.3, init_noise: float = 0.1):
        super().__init__()
        k = _one_hot_dim(latent_shape, "the gmm decoder")
        self.likelihood = make_likelihood(likelihood or {"name": "gaussian", "variance": "learned"})
        self.data_shape = tuple(data_shape)
        c, h, w = self.data_shape
        g = torch.Generator().manual_seed(0)
        self.means = nn.Parameter(0.5 + init_noise * torch.randn(k, c, h, w, generator=g))
        if isinstance(self.likelihood, Gaussian) and self.likelihood.learned:
            self.log_scales = nn.Parameter(torch.full((k, c, h, w), math.log(init_scale)))
        elif self.likelihood.params_per_dim == 1:
            self.log_scales = None
        else:
            raise ValueError(f"the gmm decoder supports a gaussian or one-parameter likelihood, "
                             f"not {self.likelihood.name!r}")

    def table(self) -> Tensor:
        """[K, params_per_dim * C, H, W]: every component's likelihood parameters."""
        return self.means if self.log_scales is None else torch.cat([self.means, self.log_scales], 1)

    def forward(self, z: Tensor) -> Observation:
        t = self.table()
        return self.likelihood((z.reshape(-1, t.shape[0]) @ t.flatten(1)).reshape(z.shape[0], *t.shape[1:]))


class GMMPosterior(nn.Module):
    """The exact posterior q(k|x) = pi_k p(x|k) / p(x), computed from the bound model's prior and decoder.

    Has no parameters of its own; the model is held by a weak reference (not a submodule)."""

    posterior_type = OneHotCategorical
    family = "gmm"
    test_shapes = {"latent_shape": (3,)}
    zoo_test_components = {"decoder": {"name": "gmm"}, "prior": {"name": "categorical"}}

    def __init__(self, *, data_shape, latent_shape):
        super().__init__()
        self.k = _one_hot_dim(latent_shape, "the gmm posterior")
        self._model = None

    def bind(self, model) -> None:
        object.__setattr__(self, "_model", weakref.ref(model))

    def forward(self, x: Tensor) -> OneHotCategorical:
        model = self._model() if self._model is not None else None
        if model is None:
            raise RuntimeError("the gmm-posterior encoder is not bound to a model: build it inside a LatentModel")
        return OneHotCategorical(component_log_joint(model, x))


def component_log_joint(model, x: Tensor) -> Tensor:
    """log pi_k + log p(x|k) for every component, ``[B, K]`` (x prepared)."""
    k = model.latent_shape[0]
    eye = torch.eye(k, device=x.device, dtype=x.dtype)
    b = x.shape[0]
    xs = x.unsqueeze(1).expand(b, k, *x.shape[1:]).reshape(b * k, *x.shape[1:])
    zs = eye.unsqueeze(0).expand(b, k, k).reshape(b * k, k)
    log_lik = model.decoder(zs).log_prob(xs).reshape(b, k)
    return log_lik + model.prior.log_prob(eye).unsqueeze(0)


# -- expectation-maximisation ----------------------------------------------------------------------
def _check_em_model(model) -> None:
    dec, prior = model.decoder, model.prior
    if not isinstance(dec, GMMDecoder) or dec.log_scales is None or not isinstance(prior, CategoricalPrior):
        raise TypeError("fit_em needs a categorical prior and a gmm decoder with a learned-variance "
                        "gaussian likelihood (e.g. the card gmm-digits)")


@torch.no_grad()
def init_from_data(model, x: Tensor, *, seed: int = 0) -> None:
    """Means at K distinct random data points, every scale the data's std per dimension, uniform weights."""
    _check_em_model(model)
    x = model.prepare(x).to(model.decoder.means.dtype)
    k = model.latent_shape[0]
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:k]
    model.decoder.means.copy_(x[idx])
    floor = model.decoder.likelihood.min_log_scale
    model.decoder.log_scales.copy_(x.std(0, unbiased=False).clamp(min=1e-3).log().clamp(min=floor).expand_as(x[idx]))
    model.prior.logits.zero_()


@torch.no_grad()
def fit_em(model, x: Tensor, iters: int = 100, *, tol: float = 0.0, reg_covar: float = 1e-6,
           batch_size: int = 4096) -> list[float]:
    """Fit a GMM latent model by EM on images ``x``; returns the mean log-likelihood (nats per
    sample) of the parameters *before* each M-step, then of the final parameters.

    E-step: r_nk = q(k|x_n) (the exact posterior).  M-step (diagonal covariances, as
    scikit-learn's ``GaussianMixture(covariance_type="diag")``):
        pi_k = N_k / N,  mu_k = sum_n r_nk x_n / N_k,
        sigma_k^2 = max(sum_n r_nk (x_n - mu_k)^2 / N_k + reg_covar, exp(2 * min_log_scale))
    Each step cannot lower the log-likelihood (the variance floor is the constrained maximiser).
    Stops early when an iteration gains less than ``tol`` nats."""
    _check_em_model(model)
    dec, prior = model.decoder, model.prior
    dtype = dec.means.dtype
    data = model.prepare(x).to(dtype)
    n = len(data)
    floor = 2 * dec.likelihood.min_log_scale
    history: list[float] = []

    def e_step() -> tuple[Tensor, float]:
        logs = [component_log_joint(model, data[i:i + batch_size]) for i in range(0, n, batch_size)]
        log_joint = torch.cat(logs)                                  # [N, K]
        log_px = torch.logsumexp(log_joint, 1)
        return (log_joint - log_px[:, None]).exp(), float(log_px.mean())

    for _ in range(iters):
        resp, ll = e_step()
        history.append(ll)
        if len(history) > 1 and history[-1] - history[-2] < tol:
            break
        log_weights, means, log_var = diag_gmm_m_step(resp, data.flatten(1), reg_covar=reg_covar, min_log_var=floor)
        prior.logits.copy_(log_weights)
        dec.means.copy_(means.reshape(dec.means.shape))
        dec.log_scales.copy_((0.5 * log_var).reshape(dec.log_scales.shape))
    else:
        history.append(e_step()[1])
    return history


def diag_gmm_m_step(resp: Tensor, flat: Tensor, *, reg_covar: float, min_log_var: float
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """The M-step of a diagonal-covariance Gaussian mixture (Bishop 2006, eq. 9.24-9.27): responsibilities
    ``resp`` [N, K] and points ``flat`` [N, D] -> (log pi_k [K], mu_k [K, D], log sigma_k^2 [K, D]),
        pi_k = N_k / N,  mu_k = sum_n r_nk x_n / N_k,
        sigma_k^2 = max(sum_n r_nk (x_n - mu_k)^2 / N_k + reg_covar, exp(min_log_var)).
    Shared by :func:`fit_em` (images) and the post-hoc latent mixture (:mod:`zoo_plugins.posthoc`)."""
    nk = resp.sum(0) + 10 * torch.finfo(flat.dtype).eps          # [K]
    means = resp.T @ flat / nk[:, None]
    var = resp.T @ (flat ** 2) / nk[:, None] - means ** 2
    log_var = (var.clamp(min=0) + reg_covar).log().clamp(min=min_log_var)
    return (nk / len(flat)).log(), means, log_var


def fit_em_from_data(model, x: Tensor, *, seed: int = 0, iters: int = 100, tol: float = 1e-6) -> list[float]:
    """The ``em`` fitting algorithm (``zoo train --algorithm em``): :func:`init_from_data`, then :func:`fit_em`."""
    init_from_data(model, x, seed=seed)
    with torch.no_grad():
        return fit_em(model, x, iters=iters, tol=tol)


@torch.no_grad()
def to_sklearn(model):
    """The model's parameters as a fitted ``sklearn.mixture.GaussianMixture(covariance_type='diag')``."""
    import numpy as np
    from sklearn.mixture import GaussianMixture
    from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

    _check_em_model(model)
    k = model.latent_shape[0]
    gm = GaussianMixture(k, covariance_type="diag")
    gm.weights_ = model.prior.log_weights.exp().double().cpu().numpy()
    gm.means_ = model.decoder.means.flatten(1).double().cpu().numpy()
    gm.covariances_ = (2 * model.decoder.log_scales.flatten(1)).exp().double().cpu().numpy()
    gm.precisions_cholesky_ = _compute_precision_cholesky(gm.covariances_, "diag")
    gm.precisions_ = gm.precisions_cholesky_ ** 2
    gm.converged_, gm.n_iter_, gm.lower_bound_ = True, 0, -np.inf
    gm.n_features_in_ = gm.means_.shape[1]
    return gm

"""LatentModel: a prior p(z), a decoder p(x|z) and an encoder q(z|x), and their ELBO.

    log p(x) >= ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))
                        =      -distortion        -      rate

Component contracts (see README, "Writing a plugin"):
  encoder(x)          -> posterior q(z|x): ``rsample()``, ``log_prob(z)``, ``mean``;
                         optionally ``entropy()`` (closed form) and ``cross_log_prob(z)``.
  decoder(z)          -> observation p(x|z): ``log_prob(x)`` [B] nats, ``mean``, ``sample()``;
                         ``decoder.likelihood`` maps images in [0, 1] to its data space.
  prior.log_prob(z)   -> [B] nats (exact, or a lower bound when ``prior.exact`` is False);
  prior.sample(n)     -> [n, *latent_shape];
  optional: prior.cross_entropy(q) = -E_q[log p(z)] (closed form), prior.kl_per_dim(q),
            prior.infer(q) -> (z, rate, extras) for structured (e.g. top-down) posteriors.
  optional: q.enumerate() -> (values [K, *latent_shape], log q(z_k|x) [B, K]) for a discrete z
            with a small support: the ELBO and log p(x) are then exact sums over the support.

Training objective (card ``zoo.objective``): ``model.objective(x)`` -> (loss, terms), the
beta-ELBO, or with ``iwae_k: K > 1`` the K-sample importance-weighted bound (Burda et al. 2015),
or with ``loss: NAME`` a surrogate of the prior's ``training_loss(q, NAME)`` (DDPM's L_simple).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .errors import CardError, ShapeError


@dataclass
class ELBO:
    """Per-sample ELBO terms in nats: ``elbo = -(distortion + rate)``."""

    elbo: Tensor
    distortion: Tensor
    rate: Tensor
    extras: dict[str, Tensor] = field(default_factory=dict)

    def loss(self, beta: float = 1.0) -> Tensor:
        """Mean negative beta-ELBO over the batch: distortion + beta * rate (nats)."""
        return (self.distortion + beta * self.rate).mean()

    def __getitem__(self, key: str) -> Tensor:
        return self.as_dict()[key]

    def as_dict(self) -> dict[str, Tensor]:
        return {"elbo": self.elbo, "distortion": self.distortion, "rate": self.rate, **self.extras}


class LatentModel(nn.Module):
    """The assembled model a card describes; build it with ``zoo.load`` or ``zoo.build``."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, prior: nn.Module, *,
                 data_shape: tuple[int, ...], latent_shape: tuple[int, ...],
                 name: str = "model", beta: float = 1.0, config: dict[str, Any] | None = None):
        super().__init__()
        self.encoder, self.decoder, self.prior = encoder, decoder, prior
        self.data_shape = tuple(data_shape)
        self.latent_shape = tuple(latent_shape)
        self.name = name
        self.beta = beta
        self.config = config or {}
        self.info: dict[str, Any] = {}  # provenance: weights file, revision, EMA or raw, ...
        for part in (encoder, decoder, prior):
            bind = getattr(part, "bind", None)
            if bind is not None:  # components that need the others (e.g. an exact posterior)
                bind(self)        # must keep the reference outside nn.Module's registry (weakref)

    # -- data ----------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the weights (float32 unless the model was moved, e.g. ``.double()``)."""
        for t in self.parameters():
            if t.dtype.is_floating_point:
                return t.dtype
        return torch.float32

    @property
    def num_data_dims(self) -> int:
        return math.prod(self.data_shape)

    def prepare(self, x: Tensor) -> Tensor:
        """Images (uint8 0..255 or float in [0, 1]), ``[B, C, H, W]`` -> the likelihood's data space."""
        if tuple(x.shape[1:]) != self.data_shape:
            raise ShapeError(f"model {self.name!r} expects images of shape {list(self.data_shape)} "
                             f"(channels, height, width), got {list(x.shape[1:])}")
        dtype = self.dtype
        x = x.to(self.device)
        x = x.to(dtype) / 255.0 if x.dtype == torch.uint8 else x.to(dtype)
        return self.decoder.likelihood.prepare(x)

    def to_images(self, x: Tensor) -> Tensor:
        """Data-space values -> images in [0, 1]."""
        return self.decoder.likelihood.to_unit(x)

    # -- the three maps --------------------------------------------------------------------------
    def encode(self, x: Tensor):
        """q(z|x) for images ``x``."""
        return self.encoder(self.prepare(x))

    def decode(self, z: Tensor):
        """p(x|z): an observation with ``log_prob``, ``mean`` and ``sample``."""
        return self.decoder(z)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Mean of p(x | z = E_q[z|x]) as images in [0, 1]."""
        return self.to_images(self.decoder(self.encode(x).mean).mean)

    @torch.no_grad()
    def sample(self, n: int, *, mean: bool = True, generator: torch.Generator | None = None) -> Tensor:
        """n images in [0, 1] from z ~ p(z), x ~ p(x|z) (or its mean when ``mean``)."""
        z = self.prior.sample(n, generator=generator)
        obs = self.decoder(z)
        return self.to_images(obs.mean if mean else obs.sample(generator))

    # -- the bound -----------------------------------------------------------------------------
    def elbo(self, x: Tensor, beta: float = 1.0, *, prepared: bool = False) -> ELBO:
        """Per-sample ELBO, distortion -E_q log p(x|z) and rate KL(q(z|x)||p(z)), nats.

        ``beta`` does not change the returned terms (the ELBO is the ELBO); pass it to
        ``ELBO.loss(beta)`` for the beta-VAE objective distortion + beta * rate."""
        x = x if prepared else self.prepare(x)
        q = self.encoder(x)
        if self._enumerable(q):
            return self._exact_elbo(x, q)
        z, rate, extras = self.rate(q)
        distortion = -self.decoder(z).log_prob(x)
        return ELBO(-(distortion + rate), distortion, rate, extras)

    def _enumerable(self, q) -> bool:
        return hasattr(q, "enumerate") and not hasattr(self.prior, "infer")

    def _enumerated_log_joint(self, x: Tensor, q) -> tuple[Tensor, Tensor, Tensor]:
        """For a discrete posterior: log q(z_k|x), log p(x|z_k) and log p(z_k) for every z_k of the support, [B, K]."""
        values, log_q = q.enumerate()                              # [K, ...], [B, K]
        b, k = log_q.shape
        z = values.unsqueeze(0).expand(b, *values.shape).reshape(b * k, *values.shape[1:])
        xs = x.unsqueeze(1).expand(b, k, *x.shape[1:]).reshape(b * k, *x.shape[1:])
        log_lik = self.decoder(z).log_prob(xs).reshape(b, k)
        return log_q, log_lik, self.prior.log_prob(values).unsqueeze(0).expand(b, k)

    def _exact_elbo(self, x: Tensor, q) -> ELBO:
        """E_q exactly, as a sum over the support: distortion = -sum_k q_k log p(x|z_k),
        rate = sum_k q_k (log q_k - log p(z_k))."""
        log_q, log_lik, log_p = self._enumerated_log_joint(x, q)
        w = log_q.exp()
        distortion = -(w * log_lik).sum(1)
        rate = (w * (log_q - log_p)).sum(1)
        return ELBO(-(distortion + rate), distortion, rate, {})

    def objective(self, x: Tensor, beta: float | None = None, *, prepared: bool = False) -> tuple[Tensor, ELBO]:
        """The training loss the card asks for, and the ELBO terms (for logging).

        ``zoo.objective.iwae_k`` 1 (default): mean of distortion + beta * rate (the beta-ELBO).
        ``iwae_k`` K > 1: minus the K-sample importance-weighted bound (Burda et al. 2015)
            log 1/K sum_i p(x|z_i) [p(z_i) / q(z_i|x)]^beta,  z_i ~ q(z|x),
        which is the IWAE bound at beta = 1; ``terms`` then hold the K-sample average of the
        ELBO terms and ``terms.extras["iwae"]`` the bound.  ``beta`` defaults to the card's.
        ``loss`` other than ``elbo`` (e.g. ``simple`` for DDPM): ``prior.training_loss(q, loss)``
        returns (loss, terms); ``elbo()`` still reports the true bound."""
        beta = self.beta if beta is None else float(beta)
        objective = self.config.get("objective") or {}
        k = int(objective.get("iwae_k", 1))
        x = x if prepared else self.prepare(x)
        loss_name = objective.get("loss", "elbo")
        if loss_name != "elbo":  # a surrogate the prior defines, e.g. DDPM's L_simple
            hook = getattr(self.prior, "training_loss", None)
            if hook is None:
                raise CardError(f"objective.loss {loss_name!r} needs a prior with training_loss(q, loss); "
                                 f"{type(self.prior).__name__} has none (use 'elbo')")
            return hook(self.encoder(x), loss_name)
        if k <= 1:
            terms = self.elbo(x, prepared=True)
            return terms.loss(beta), terms
        q = self.encoder(x)
        if self._enumerable(q):  # the enumerated ELBO of an exact posterior is already log p(x)
            terms = self._exact_elbo(x, q)
            return terms.loss(beta), terms
        z = q.rsample(k)                                                       # [k, B, ...]
        log_lik = torch.stack([self.decoder(z[i]).log_prob(x) for i in range(k)])
        log_ratio = self.prior.log_prob(z) - q.log_prob(z)                      # log p(z) - log q(z|x)
        bound = torch.logsumexp(log_lik + beta * log_ratio, 0) - math.log(k)
        terms = ELBO((log_lik + log_ratio).mean(0), -log_lik.mean(0), -log_ratio.mean(0), {"iwae": bound})
        return -bound.mean(), terms

    def rate(self, q) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Sample z ~ q and compute KL(q||p): closed form where the prior offers it, else one-sample MC."""
        infer = getattr(self.prior, "infer", None)
        if infer is not None:
            return infer(q)
        z = q.rsample()
        cross_entropy = getattr(self.prior, "cross_entropy", None)
        if cross_entropy is not None and hasattr(q, "entropy"):
            # KL(q||p) = -H[q] - E_q[log p(z)]
            return z, cross_entropy(q) - q.entropy(), {}
        return z, q.log_prob(z) - self.prior.log_prob(z), {}

    def log_likelihood(self, x: Tensor, k: int = 100, *, prepared: bool = False) -> Tensor:
        """Importance-weighted bound (Burda et al. 2015), nats per sample:
        log p(x) >= log 1/k sum_i p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x).  Tight as k -> inf."""
        x = x if prepared else self.prepare(x)
        q = self.encoder(x)
        if self._enumerable(q):  # discrete z: log p(x) = logsumexp_k log p(x|z_k) p(z_k), exactly
            _, log_lik, log_p = self._enumerated_log_joint(x, q)
            return torch.logsumexp(log_lik + log_p, 1)
        z = q.rsample(k)                                          # [k, B, ...]
        log_w = torch.stack([self.decoder(z[i]).log_prob(x) for i in range(k)])
        log_w = log_w + self.prior.log_prob(z) - q.log_prob(z)    # [k, B]
        return torch.logsumexp(log_w, 0) - math.log(k)

    def bits_per_dim(self, nats: Tensor | float) -> Tensor | float:
        """nats per image -> bits per data dimension."""
        return nats / (self.num_data_dims * math.log(2))

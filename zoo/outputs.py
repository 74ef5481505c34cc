"""Typed results of a model's maps, as diffusers' ``AutoencoderKLOutput`` and pythae's ``ModelOutput``.

    out = model(images)                 # ModelOutput: ELBO terms, q(z|x), z and p(x|z)
    out.elbo, out.distortion, out.rate  # per-sample, nats
    out.observation.log_prob(images)    # = -out.distortion, for the same z

    obs = model.decode(z)               # ImageObservation: p(x|z) that takes images as the model does
    obs.log_prob(images)                # uint8 0..255 or float [0, 1]; prepared into the likelihood's space

An ``ImageObservation``'s ``log_prob`` prepares images with ``model.prepare`` (the map the ELBO uses), so a
Bernoulli decoder scores the binarised image and a [-1, 1] likelihood the rescaled one: the number is the
distortion term the model's own ELBO reports.  Anything outside the images the model takes (floats outside
[0, 1], another shape, NaN) is refused by name (InputError, ShapeError).  Values already in the likelihood's
space go to ``obs.observation.log_prob`` (the decoder's own p(x|z)).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


def _shape(t: Any) -> str:
    return "x".join(str(s) for s in t.shape) if isinstance(t, Tensor) else type(t).__name__


@dataclass(repr=False)
class ImageObservation:
    """p(x|z) for a batch, as ``model.decode(z)`` returns it.

    ``log_prob(images) -> [B]`` nats, for images as the model takes them; ``mean`` and ``sample()`` in the
    likelihood's data space (as the decoder's observation); ``images`` the mean as images in [0, 1];
    ``observation`` the decoder's own p(x|z) (its ``log_prob`` takes data already in the likelihood's space)."""

    observation: Any
    model: Any = field(compare=False)

    def log_prob(self, x: Any) -> Tensor:
        """log p(x|z) in nats, one value per sample: ``x`` uint8 0..255 or float [0, 1] images ``[B, C, H, W]``,
        prepared as the ELBO prepares them; anything else is refused by name."""
        return self.observation.log_prob(self.model.prepare(x))

    @property
    def mean(self) -> Tensor:
        """E[x|z] in the likelihood's data space (``images`` for [0, 1] images)."""
        return self.observation.mean

    @property
    def images(self) -> Tensor:
        """E[x|z] as images in [0, 1]."""
        return self.model.to_images(self.observation.mean)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """x ~ p(x|z) in the likelihood's data space (``model.to_images`` shows it as images)."""
        return self.observation.sample(generator)

    def __getattr__(self, name: str) -> Any:  # the decoder's other members (e.g. ``params``) stay reachable
        if name in ("observation", "model"):
            raise AttributeError(name)
        return getattr(self.observation, name)

    def __repr__(self) -> str:
        likelihood = getattr(getattr(self.model.decoder, "likelihood", None), "name", "") or "?"
        return (f"ImageObservation(model={self.model.name!r}, likelihood={likelihood!r}, "
                f"mean={_shape(self.observation.mean)})")


@dataclass(repr=False)
class ModelOutput:
    """What ``model(x)`` returns: the ELBO terms of a batch and the distributions they were computed with.

    ``elbo``, ``distortion`` (-E_q log p(x|z)) and ``rate`` (KL(q(z|x) || p(z))) are ``[B]`` in nats, with
    ``elbo = -(distortion + rate)``; ``extras`` a component's further terms (per-layer KL, ...).
    ``posterior`` is q(z|x); ``z`` the sample the distortion was scored at and ``observation`` p(x|z) for it
    (both None where the ELBO is an exact sum over a discrete posterior's support, e.g. a GMM)."""

    elbo: Tensor
    distortion: Tensor
    rate: Tensor
    posterior: Any
    z: Tensor | None = None
    observation: ImageObservation | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)
    num_data_dims: int = 0

    def loss(self, beta: float = 1.0) -> Tensor:
        """Mean negative beta-ELBO over the batch: distortion + beta * rate (nats)."""
        return (self.distortion + beta * self.rate).mean()

    @property
    def bits_per_dim(self) -> Tensor:
        """-ELBO per sample in bits per data dimension (a bound on the negative log-likelihood)."""
        from zoo.distributions import bits_per_dim

        return bits_per_dim(-self.elbo, self.num_data_dims)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key) if key in self.__dataclass_fields__ else self.extras[key]

    def __repr__(self) -> str:
        def mean(t: Tensor) -> str:
            return f"{float(t.detach().float().mean()):.4g}"

        z = f", z={_shape(self.z)}" if self.z is not None else ""
        return (f"ModelOutput(batch={self.elbo.shape[0]}, elbo={mean(self.elbo)}, distortion={mean(self.distortion)}, "
                f"rate={mean(self.rate)} nats (batch means), posterior={type(self.posterior).__name__}{z})")

"""Observation models p(x|z): how a decoder's network output becomes a distribution over data.

Data enter a model as images in [0, 1] (or uint8 0..255).  Each likelihood says how it wants
them (``prepare``), how to show its values as images again (``to_unit``), how many network
outputs it needs per data dimension, and how to score data (``log_prob``, nats, summed over
every data dimension, one number per sample).

The concrete classes here implement the protocols of :mod:`zoo.contracts` (``Observation``, ``Likelihood``,
``ParametricLikelihood``) for likelihoods that factorise over data dimensions: :class:`ElementwiseLikelihood` is
the base class (a subclass gives ``log_prob_elementwise``, ``mean`` and ``sample``) and
:class:`ElementwiseObservation` the p(x|z) of one batch it returns.  ``Likelihood`` and ``Observation`` remain
importable from here as aliases of the two (the names plugins written against earlier releases use).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.distributions import LOG_2PI, sum_event
from zoo.errors import CardError


@dataclass
class ElementwiseObservation:
    """p(x|z) for a batch (a zoo.contracts.Observation): ``log_prob(x) -> [B]`` (the elementwise log-probabilities
    summed over every data dimension), ``mean`` and ``sample()`` in data space."""

    likelihood: "ElementwiseLikelihood"
    params: Tensor  # [B, k*C, H, W] network output

    def log_prob(self, x: Tensor) -> Tensor:
        return sum_event(self.likelihood.log_prob_elementwise(self.params, x), x.dim() - 1)

    @property
    def mean(self) -> Tensor:
        return self.likelihood.mean(self.params)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return self.likelihood.sample(self.params, generator)


class ElementwiseLikelihood:
    """Base of the likelihoods that factorise over data dimensions (a zoo.contracts.ParametricLikelihood): subclasses
    set ``name``, ``params_per_dim``, ``discrete`` and ``log_prob_elementwise``, ``mean``, ``sample``."""

    name = ""
    params_per_dim = 1
    discrete = True  # log_prob is a probability mass, so bits/dim are comparable across models

    def __call__(self, params: Tensor) -> ElementwiseObservation:
        return ElementwiseObservation(self, params)

    def prepare(self, x01: Tensor) -> Tensor:
        return x01

    def to_unit(self, x: Tensor) -> Tensor:
        return x.clamp(0, 1)

    def split(self, params: Tensor) -> tuple[Tensor, ...]:
        return params.chunk(self.params_per_dim, dim=1)

    def log_prob_elementwise(self, params: Tensor, x: Tensor) -> Tensor:
        raise NotImplementedError

    def mean(self, params: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError


# the names of earlier releases (plugins import them; README's contract table names the base class)
Likelihood = ElementwiseLikelihood
Observation = ElementwiseObservation


class Bernoulli(ElementwiseLikelihood):
    """Bernoulli on binarised pixels: x = 1[x01 > 0.5] (fixed binarisation, reproducible)."""

    name = "bernoulli"

    def prepare(self, x01: Tensor) -> Tensor:
        return (x01 > 0.5).to(x01.dtype)

    def log_prob_elementwise(self, params: Tensor, x: Tensor) -> Tensor:
        # log p(x) = x log sigma(l) + (1 - x) log(1 - sigma(l)) = -BCE(l, x)
        return -F.binary_cross_entropy_with_logits(params, x, reduction="none")

    def mean(self, params: Tensor) -> Tensor:
        return torch.sigmoid(params)

    def sample(self, params: Tensor, generator=None) -> Tensor:
        return torch.bernoulli(torch.sigmoid(params), generator=generator)


class Gaussian(ElementwiseLikelihood):
    """Gaussian density on x in [0, 1]; fixed scale (``scale``) or a learned per-pixel scale.

    A continuous density: its bits/dim are not comparable with discrete likelihoods'."""

    name = "gaussian"
    discrete = False

    def __init__(self, variance: str = "fixed", scale: float = 0.1, min_log_scale: float = -7.0):
        if variance not in ("fixed", "learned"):
            raise CardError(f"gaussian likelihood: variance must be 'fixed' or 'learned', got {variance!r}")
        self.learned = variance == "learned"
        self.params_per_dim = 2 if self.learned else 1
        self.log_scale = math.log(scale)
        self.min_log_scale = min_log_scale

    def _mean_logscale(self, params: Tensor) -> tuple[Tensor, Tensor]:
        if self.learned:
            mean, log_scale = self.split(params)
            return mean, log_scale.clamp(min=self.min_log_scale)
        return params, torch.full_like(params, self.log_scale)

    def log_prob_elementwise(self, params: Tensor, x: Tensor) -> Tensor:
        mean, log_scale = self._mean_logscale(params)
        return -0.5 * LOG_2PI - log_scale - 0.5 * ((x - mean) * torch.exp(-log_scale)) ** 2

    def mean(self, params: Tensor) -> Tensor:
        return self._mean_logscale(params)[0]

    def sample(self, params: Tensor, generator=None) -> Tensor:
        mean, log_scale = self._mean_logscale(params)
        return mean + log_scale.exp() * torch.randn(mean.shape, generator=generator, device=mean.device)


class SignedUnitLikelihood(ElementwiseLikelihood):
    """Base of likelihoods on 8-bit data scaled to [-1, 1] (x = 2 * x01 - 1)."""

    def prepare(self, x01: Tensor) -> Tensor:
        return x01 * 2 - 1

    def to_unit(self, x: Tensor) -> Tensor:
        return ((x + 1) / 2).clamp(0, 1)


class DiscretizedLogistic(SignedUnitLikelihood):
    """Discretised logistic on 8-bit data scaled to [-1, 1] (PixelCNN++, Salimans et al. 2017):
    P(x) = sigma((x + 1/255 - mu)/s) - sigma((x - 1/255 - mu)/s), edge bins open to +-inf."""

    name = "discretized-logistic"
    params_per_dim = 2

    def __init__(self, bits: int = 8, min_log_scale: float = -7.0):
        self.half_bin = 1.0 / (2 ** bits - 1)
        self.min_log_scale = min_log_scale

    def log_prob_elementwise(self, params: Tensor, x: Tensor) -> Tensor:
        mean, log_scale = self.split(params)
        log_scale = log_scale.clamp(min=self.min_log_scale)
        inv_s = torch.exp(-log_scale)
        centered = x - mean
        plus = inv_s * (centered + self.half_bin)
        minus = inv_s * (centered - self.half_bin)
        log_cdf_plus = F.logsigmoid(plus)                 # log sigma(plus), for the x = -1 bin
        log_one_minus_cdf_minus = -F.softplus(minus)      # log (1 - sigma(minus)), for the x = +1 bin
        cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
        mid = inv_s * centered
        # when the bin mass underflows, use the density at the centre times the bin width
        log_pdf_mid = mid - log_scale - 2 * F.softplus(mid) + math.log(2 * self.half_bin)
        log_mid = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid)
        return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_minus, log_mid))

    def mean(self, params: Tensor) -> Tensor:
        return self.split(params)[0].clamp(-1, 1)

    def sample(self, params: Tensor, generator=None) -> Tensor:
        mean, log_scale = self.split(params)
        u = torch.rand(mean.shape, generator=generator, device=mean.device).clamp(1e-5, 1 - 1e-5)
        x = mean + log_scale.clamp(min=self.min_log_scale).exp() * (torch.log(u) - torch.log1p(-u))
        return torch.round((x.clamp(-1, 1) + 1) / (2 * self.half_bin)) * (2 * self.half_bin) - 1


def make_likelihood(spec: str | dict) -> ElementwiseLikelihood:
    """``"bernoulli"`` or ``{"name": "gaussian", "variance": "learned"}`` -> the registered likelihood.

    Likelihoods come from the plugin registry (hook ``register_likelihoods``), so any decoder that
    takes a ``likelihood`` argument can use a third-party one by name."""
    from zoo.contracts import ParametricLikelihood, missing_members
    from zoo.errors import PluginError
    from zoo.registry import get_registry

    args = dict(spec) if isinstance(spec, dict) else {"name": spec}
    name = args.pop("name", None)
    if not isinstance(name, str):
        raise CardError(f"likelihood: expected a name (a string) or a mapping with 'name', got {spec!r}")
    try:
        entry = get_registry().get("likelihood", name)
    except PluginError as e:
        raise CardError(f"likelihood: {e}") from None
    try:
        likelihood = entry.factory(**args)
    except (TypeError, ValueError) as e:
        raise CardError(f"likelihood {name!r} from {entry.owner}: {e}") from None
    lacking = missing_members(likelihood, ParametricLikelihood)
    if lacking:
        raise CardError(f"likelihood {name!r} from {entry.owner} lacks the required member(s) "
                        f"{', '.join(repr(m) for m in lacking)} of zoo.contracts.ParametricLikelihood")
    return likelihood

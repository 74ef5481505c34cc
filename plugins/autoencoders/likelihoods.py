"""Stated likelihoods for deterministic decoders: one noise scale for every pixel, fitted to data.

The Stable Diffusion and LDM autoencoders were trained with perceptual + adversarial losses; their
decoders output an image, not a distribution.  To read them as latent-variable models with an ELBO
the zoo attaches an observation model p(x|z) around the decoder's output mu(z):

    fixed-discretized-gaussian   P(x|z) = Phi((x + 1/255 - mu) / s) - Phi((x - 1/255 - mu) / s)
    fixed-discretized-logistic   P(x|z) = sigma((x + 1/255 - mu) / s) - sigma((x - 1/255 - mu) / s)

on 8-bit images scaled to [-1, 1] (bin width 2/255; the lowest and highest bins open to -inf /
+inf, so the 256 masses sum to 1 and bits/dim compare with every discrete model here).  ``s`` is
one number in [-1, 1] data units (one 8-bit level is 2/255 = 0.00784).

The scale is not a network output, so it is fitted, not trained: :meth:`fit` maximises the
distortion term of the ELBO, sum_n E_q(z|x_n) log P(x_n|z) with one z ~ q(z|x_n) per image (the
rate does not depend on s), over images that are then *not* evaluated (``zoo diagnose`` holds
them out; see ``--fit-points``).  The Gaussian ML scale of the residuals x - mu, sqrt(mean r^2),
brackets a golden-section search on log s (the discretised log-likelihood is unimodal in s).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.distributions import bits_per_dim
from zoo.errors import CardError
from zoo.likelihoods import SignedUnitLikelihood

from zoo_plugins.diffusion.schedule import discretized_gaussian_log_likelihood

__all__ = ["FixedScaleDiscretizedGaussian", "FixedScaleDiscretizedLogistic", "golden_section_max"]

HALF_BIN = 1.0 / 255.0          # half of one 8-bit level in [-1, 1] units
MIN_SCALE, MAX_SCALE = 1e-4, 2.0  # the search interval for s


def golden_section_max(f, lo: float, hi: float, iters: int = 60) -> float:
    """argmax of a unimodal f on [lo, hi] by golden-section search (interval shrinks by 0.618 per step)."""
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = f(d)
    return (a + b) / 2.0


class _FixedScale(SignedUnitLikelihood):
    """Base: the decoder's single output map per channel is the mean mu; ``scale`` s is shared."""

    params_per_dim = 1
    family = ""

    def __init__(self, scale: float = 0.05, fitted: str | None = None):
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not MIN_SCALE <= scale <= MAX_SCALE:
            raise CardError(f"likelihood {self.name!r}: scale must be a number in [{MIN_SCALE}, {MAX_SCALE}] "
                            f"([-1, 1] data units; one 8-bit level is {2 * HALF_BIN:.5f}), got {scale!r}")
        self.scale = float(scale)
        self.fitted = fitted  # how the current scale was obtained (None: the card's value)

    # -- the observation model ---------------------------------------------------------------------
    def log_mass(self, mean: Tensor, x: Tensor, log_scale: Tensor | float) -> Tensor:
        raise NotImplementedError

    def log_prob_elementwise(self, params: Tensor, x: Tensor) -> Tensor:
        """log P(x|mu) per pixel, nats."""
        return self.log_mass(params, x, math.log(self.scale))

    def mean(self, params: Tensor) -> Tensor:
        """The decoder's image, clamped to the data range (as the upstream pipelines do)."""
        return params.clamp(-1, 1)

    def sample(self, params: Tensor, generator=None) -> Tensor:
        noise = self._noise(params, generator)
        x = (params + self.scale * noise).clamp(-1, 1)
        return torch.round((x + 1) / (2 * HALF_BIN)) * (2 * HALF_BIN) - 1

    def _noise(self, params: Tensor, generator) -> Tensor:
        raise NotImplementedError

    # -- reports and fitting ----------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "scale": self.scale,
                "scale_in_8bit_levels": self.scale / (2 * HALF_BIN),
                "scale_units": "[-1, 1] data units (one 8-bit level = 2/255)",
                "fitted": self.fitted or "no: the card's value"}

    @torch.no_grad()
    def fit(self, model, images: Tensor, batch_size: int = 8) -> dict[str, Any]:
        """Maximum-likelihood scale on ``images`` (uint8 or [0, 1]), networks fixed; sets ``self.scale``.

        Maximises sum_n log P(x_n | z_n), z_n ~ q(z|x_n) (one draw per image, as the ELBO), i.e. the
        held-out distortion.  Returns the fitted scale, the bracket and the distortion before / after."""
        if len(images) == 0:
            raise ValueError("cannot fit the likelihood scale on no images")
        means, xs = [], []
        for start in range(0, len(images), batch_size):
            x = model.prepare(images[start:start + batch_size])
            z = model.posterior(x).rsample()
            means.append(model.decoder(z).params.float().cpu())
            xs.append(x.float().cpu())
        mean, x = torch.cat(means), torch.cat(xs)
        before = float(-self.log_mass(mean, x, math.log(self.scale)).sum() / len(x))
        rms = float((x - mean).pow(2).mean().sqrt())
        lo = math.log(max(MIN_SCALE, rms / 20.0))
        hi = math.log(min(MAX_SCALE, max(rms * 4.0, 4 * HALF_BIN)))
        objective = lambda log_s: float(self.log_mass(mean, x, log_s).sum())  # noqa: E731
        log_s = golden_section_max(objective, lo, hi)
        self.scale = math.exp(log_s)
        after = float(-self.log_mass(mean, x, log_s).sum() / len(x))
        dims = x[0].numel()
        self.fitted = (f"maximum likelihood on {len(x)} held-out images (golden-section search on log s in "
                       f"[{math.exp(lo):.3g}, {math.exp(hi):.3g}], one z ~ q(z|x) per image)")
        return {"scale": self.scale, "n": len(x), "residual_rms": rms, "method": self.fitted,
                "distortion_before": before, "distortion_after": after,
                "distortion_bpd_after": bits_per_dim(after, dims)}


class FixedScaleDiscretizedGaussian(_FixedScale):
    """``fixed-discretized-gaussian``: Gaussian N(mu, s^2) integrated over the pixel's 8-bit bin."""

    name = "fixed-discretized-gaussian"
    family = "discretized Gaussian"

    def log_mass(self, mean: Tensor, x: Tensor, log_scale: Tensor | float) -> Tensor:
        return discretized_gaussian_log_likelihood(x, mean, torch.as_tensor(log_scale, dtype=mean.dtype,
                                                                            device=mean.device))

    def _noise(self, params: Tensor, generator) -> Tensor:
        return torch.randn(params.shape, generator=generator, device=params.device, dtype=params.dtype)


class FixedScaleDiscretizedLogistic(_FixedScale):
    """``fixed-discretized-logistic``: logistic(mu, s) integrated over the pixel's 8-bit bin."""

    name = "fixed-discretized-logistic"
    family = "discretized logistic"

    def log_mass(self, mean: Tensor, x: Tensor, log_scale: Tensor | float) -> Tensor:
        inv_s = math.exp(-float(log_scale))
        plus = (x - mean + HALF_BIN) * inv_s
        minus = (x - mean - HALF_BIN) * inv_s
        log_cdf_plus = F.logsigmoid(plus)                  # the x = -1 bin: log sigma(plus)
        log_one_minus_cdf_minus = -F.softplus(minus)       # the x = +1 bin: log (1 - sigma(minus))
        # log(sigma(plus) - sigma(minus)) = log sigma(plus) + log(1 - exp(log sigma(minus) - log sigma(plus)))
        log_mid = log_cdf_plus + torch.log1p(-torch.exp(F.logsigmoid(minus) - log_cdf_plus).clamp(max=1 - 1e-12))
        # far in the upper tail the difference above cancels: use the mirrored form there
        log_mid_upper = -F.softplus(minus) + torch.log1p(-torch.exp(-(plus - minus)).clamp(max=1 - 1e-12)) \
            - F.softplus(-plus)
        log_mid = torch.where(minus > 0, log_mid_upper, log_mid)
        return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_minus, log_mid))

    def _noise(self, params: Tensor, generator) -> Tensor:
        u = torch.rand(params.shape, generator=generator, device=params.device, dtype=params.dtype)
        u = u.clamp(1e-6, 1 - 1e-6)
        return torch.log(u) - torch.log1p(-u)

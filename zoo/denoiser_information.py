"""The information a diffusion model *learned*: I(x; z_snr) from its denoiser's error, by I-MMSE.

The I-MMSE relation (Guo, Shamai & Verdu 2005) for z_snr = sqrt(snr) x + eps, eps ~ N(0, I):

    d/dsnr I(x; z_snr) = 1/2 mmse(snr),   mmse(snr) = E ||x - E[x | z_snr]||^2          (nats; summed over dims)
    =>  I(x; z_snr) = 1/2 int_0^snr mmse(s) ds = 1/2 int_{-inf}^{lambda} e^l mmse(e^l) dl,  lambda = log snr

and, pointwise (Kong, Brekelmans & Ver Steeg 2023, "Information-Theoretic Diffusion", eqs. 7 and 9):

    discrete x:    -log P(x) = 1/2 int_0^inf mmse(x, s) ds
    continuous x:  -log p(x) = d/2 log(2 pi e) - 1/2 int_0^inf (d / (1 + s) - mmse(x, s)) ds

Here E[x|z] is replaced by the model's denoiser (``zoo.contracts.Denoiser``; z in the variance-preserving
form alpha x + sigma eps with alpha^2/sigma^2 = snr, the same information), so mmse becomes the model's
mean squared error, which is >= the true mmse: the curve is the *model's* estimate of I(x; z_snr), an upper
bound on the true I(x; z_snr) of the data only to the extent the denoiser is Bayes-optimal, and it
differs between trained and untrained weights (unlike I(x_0; x_t) of the forward process, which the
schedule alone fixes: zoo.forward_information).

Estimator: a grid of ``points`` log-SNR values spanning the denoiser's trained range; for every image one
fresh eps per grid point (``samples`` of them, averaged); the per-image integral by the trapezoid rule in
log-SNR, plus the part below the grid, 1/2 snr_min mse(snr_min) (the error there is ~ its value at snr_min;
mmse is decreasing, so this under-counts by at most 1/2 snr_min (Var x - mse(snr_min))).  Per-image curves are
independent, so each point's standard error is over the images (it covers the noise draws, not the
quadrature, which the Gaussian test bounds).  The -log p(x) estimates truncate the integral at the top of
the grid (nothing is added above it) and are estimates, not bounds.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from zoo import contracts as c

DEFAULT_POINTS = 32
MAX_IMAGES = 300


def _mean_se(v: Tensor) -> tuple[float, float]:
    n = v.shape[0]
    return float(v.mean()), float(v.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")


@torch.no_grad()
def information_curve(denoise: Callable[[Tensor, Tensor], Tensor], x: Tensor, log_snr_min: float,
                      log_snr_max: float, *, points: int = DEFAULT_POINTS, samples: int = 1, seed: int = 0,
                      batch_size: int = 4096, discrete: bool | None = None) -> dict[str, Any]:
    """I(x; z_lambda) on a log-SNR grid from ``denoise(z, log_snr)`` (the model's E[x|z]); ``x`` ``[N, ...]``
    in the diffusion's space.  Returns lists per grid point (``log_snr``, ``information`` + ``_se``, ``mse`` +
    ``_se``), the value at the top of the grid and, when ``discrete`` is given, Kong et al.'s -log p(x)
    estimate for discrete (True) or continuous (False) data, with standard errors over the N images."""
    if not log_snr_min < log_snr_max:
        raise ValueError(f"the log-SNR range must be increasing, got [{log_snr_min}, {log_snr_max}]")
    if points < 2 or samples < 1:
        raise ValueError(f"points must be >= 2 and samples >= 1, got {points} and {samples}")
    n = x.shape[0]
    if n < 2:
        raise ValueError("the information curve needs at least 2 images (its standard error is over them)")
    d = x[0].numel()
    grid = torch.linspace(log_snr_min, log_snr_max, points, dtype=torch.float64)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    mse = torch.zeros(n, points, dtype=torch.float64)
    rows = max(1, batch_size // max(samples, 1))
    for j, lam in enumerate(grid.tolist()):
        alpha, sigma = math.sqrt(1.0 / (1.0 + math.exp(-lam))), math.sqrt(1.0 / (1.0 + math.exp(lam)))
        for start in range(0, n, rows):
            xb = x[start:start + rows]
            xs = xb.unsqueeze(0).expand(samples, *xb.shape).reshape(-1, *xb.shape[1:])
            eps = torch.randn(xs.shape, generator=gen, dtype=torch.float32).to(device=xs.device, dtype=xs.dtype)
            z = alpha * xs + sigma * eps                       # z = alpha x + sigma eps, snr = e^lambda
            x_hat = denoise(z, torch.full((xs.shape[0],), lam, device=xs.device, dtype=xs.dtype))
            err = (xs - x_hat).double().pow(2).flatten(1).sum(1).cpu().view(samples, -1).mean(0)
            mse[start:start + xb.shape[0], j] = err
    snr = grid.exp()
    f = 0.5 * snr * mse                                        # dI/dlambda = 1/2 snr mmse(snr)
    steps = 0.5 * (f[:, 1:] + f[:, :-1]) * (grid[1:] - grid[:-1])
    below = 0.5 * snr[0] * mse[:, 0]                           # 1/2 int_0^snr_min mse ds, mse ~ mse(snr_min)
    info = torch.cat([below[:, None], below[:, None] + steps.cumsum(1)], 1)   # [N, points]
    out: dict[str, Any] = {"log_snr": grid.tolist(), "information": [], "information_se": [], "mse": [], "mse_se": []}
    for j in range(points):
        m, s = _mean_se(info[:, j])
        out["information"].append(m)
        out["information_se"].append(s)
        m, s = _mean_se(mse[:, j])
        out["mse"].append(m)
        out["mse_se"].append(s)
    out["information_top"], out["information_top_se"] = _mean_se(info[:, -1])
    out.update({"n": n, "dims": d, "points": points, "samples": samples, "seed": seed,
                "estimator": (f"I-MMSE (Guo, Shamai & Verdu 2005): 1/2 int e^lambda mse(lambda) dlambda with the model's "
                              f"denoiser, trapezoid on {points} log-SNR points in [{log_snr_min:.2f}, {log_snr_max:.2f}] "
                              f"+ 1/2 snr_min mse(snr_min) below; {samples} noise draw(s) per image and point; "
                              f"SE over the N={n} images")})
    if discrete is not None:
        if discrete:   # -log P(x) = 1/2 int_0^inf mmse(x, s) ds   (Kong et al. 2023 eq. 9)
            nll = info[:, -1]
            how = "discrete x: 1/2 int_0^snr_max mse ds (Kong et al. 2023), nothing added above the grid"
        else:          # -log p(x) = d/2 log(2 pi e) - 1/2 int_0^inf (d/(1+s) - mse(x, s)) ds   (Kong et al. eq. 7)
            g = 0.5 * snr * (d / (1.0 + snr) - mse)            # integrand in lambda
            integral = (0.5 * (g[:, 1:] + g[:, :-1]) * (grid[1:] - grid[:-1])).sum(1) + 0.5 * snr[0] * (d / (1 + snr[0]) - mse[:, 0])
            nll = 0.5 * d * math.log(2 * math.pi * math.e) - integral
            how = "continuous x: d/2 log(2 pi e) - 1/2 int (d/(1+s) - mse) ds (Kong et al. 2023), truncated at snr_max"
        out["nll"], out["nll_se"] = _mean_se(nll)
        out["nll_estimator"] = f"{how}; an estimate, not a bound"
    return out


@torch.no_grad()
def model_information(model, data: Tensor, *, posteriors: list | None = None, points: int = DEFAULT_POINTS,
                      samples: int = 1, seed: int = 0, max_images: int = MAX_IMAGES) -> dict[str, Any]:
    """The learned-information curve of a model whose prior is a ``zoo.contracts.Denoiser`` (ValueError
    otherwise).  The diffused variable is the data itself under a fixed noising encoder (pixel diffusion)
    and one z ~ q(z|x) per image under a learned encoder (latent diffusion); ``posteriors`` (per batch, as
    ``zoo.dataset_elbo`` keeps them) avoid encoding again."""
    prior = model.prior
    if not c.has(prior, c.Denoiser):
        raise ValueError(f"model {model.name!r}: its prior has no denoiser (zoo.contracts.Denoiser)")
    data = data[:max_images]
    if posteriors is None:
        posteriors = [model.encode(data[i:i + 500]) for i in range(0, len(data), 500)]
    pixel = bool(posteriors) and c.is_fixed(posteriors[0])
    if pixel:
        x = torch.cat([model.prepare(data[i:i + 500]) for i in range(0, len(data), 500)])
        discrete = bool(model.decoder.likelihood.discrete)
        space = "the data x (pixel diffusion)"
    else:
        x = torch.cat([q.rsample() for q in posteriors])[:max_images]
        discrete = False
        space = "the latent z ~ q(z|x), one draw per image (latent diffusion)"
    lo, hi = prior.log_snr_range()
    out = information_curve(prior.denoise, x, lo, hi, points=points, samples=samples, seed=seed, discrete=discrete)
    out["variable"] = space
    return out

"""I(x_0; x_t) along a diffusion model's Gaussian forward process, with the exact aggregate of the data.

q(x_t|x_0) = N(a_t x_0, s_t^2 I) (``zoo.contracts.GaussianForwardProcess``) is the posterior of a fixed
encoder, so I(x_0; x_t) over the N evaluated images is measured with the same paired estimator as every
VAE's I_q(x;z) (``zoo.diagnostics.paired_bounds``): a lower bound <= log N and a leave-one-out upper bound.

What the curve is: a property of the *data and the noise schedule*, not of anything learned (the
encoder has no parameters).  At small t every image stays identifiable from x_t, so the lower bound
reads log N (saturated: it only says I >= log N); it is identified only where it is below log N.
I(x_0; x_{1:T}) is at least I(x_0; x_1), i.e. log N on any finite set, for any diffusion model.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor

from zoo import contracts as c
from zoo.diagnostics import SATURATION, paired_bounds
from zoo.distributions import DiagGaussian


def default_timesteps(T: int, count: int = 40) -> list[int]:
    """About ``count`` 1-based timesteps in 1..T, log-spaced at small t and linear after."""
    logs = torch.logspace(0, math.log10(T), count // 2).round().long().tolist()
    lin = torch.linspace(1, T, count - count // 2).round().long().tolist()
    return sorted({min(max(int(t), 1), T) for t in logs + lin})


@torch.no_grad()
def information_curve(a: Tensor, s: Tensor, x0: Tensor, *, timesteps: Sequence[int] | None = None,
                      samples: int = 4, seed: int = 0) -> dict[str, Any]:
    """I(x_0; x_t) bounds at 1-based ``timesteps`` for q(x_t|x_0) = N(a_t x_0, s_t^2 I); ``x0`` ``[N, ...]`` in
    the diffusion's data space.  Returns lists per t: ``lower`` (+ ``lower_se``), ``upper`` (+ ``upper_se``),
    ``saturated`` (lower > 95% of log N: only a lower bound) and ``log_n``."""
    n = x0.shape[0]
    if n < 2:
        raise ValueError("the exact aggregate needs at least 2 images")
    T = a.shape[0]
    ts = list(timesteps) if timesteps is not None else default_timesteps(T)
    bad = [t for t in ts if not 1 <= int(t) <= T]
    if bad:
        raise ValueError(f"timesteps must lie in 1..{T}, got {bad[:5]}")
    x = x0.double().flatten(1)
    out: dict[str, Any] = {"t": [], "lower": [], "lower_se": [], "upper": [], "upper_se": [], "saturated": []}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for t in ts:
            at, st = float(a[t - 1]), float(s[t - 1])
            q = DiagGaussian(at * x, torch.full_like(x, math.log(st)))
            lo, lo_se, up, up_se = paired_bounds(q, samples)
            out["t"].append(int(t))
            out["lower"].append(max(lo, 0.0))
            out["lower_se"].append(lo_se)
            out["upper"].append(up)
            out["upper_se"].append(up_se)
            out["saturated"].append(lo > SATURATION * math.log(n))
    out.update({"n": n, "log_n": math.log(n), "samples": samples, "seed": seed,
                "estimator": "paired InfoNCE lower / leave-one-out upper bound (zoo.diagnostics.paired_bounds) "
                             f"with the exact aggregate of the N={n} images; q(x_t|x_0) Gaussian in closed form"})
    identified = [t for t, sat in zip(out["t"], out["saturated"]) if not sat]
    out["identified_from_t"] = identified[0] if identified else None
    tight = [t for t, lo, up in zip(out["t"], out["lower"], out["upper"]) if up - lo <= 0.05 * max(lo, 1e-3) + 1e-3]
    out["bracket_within_5pct_from_t"] = tight[0] if tight else None
    return out


@torch.no_grad()
def model_information_curve(model, data: Tensor, **kwargs) -> dict[str, Any]:
    """The curve for a model whose prior declares its forward process (ValueError otherwise); ``data``
    images (uint8 or [0, 1]) go through ``model.prepare`` into the diffusion's data space."""
    if not c.has(model.prior, c.GaussianForwardProcess):
        raise ValueError(f"model {model.name!r}: its prior declares no Gaussian forward process "
                         f"(zoo.contracts.GaussianForwardProcess)")
    a, s = model.prior.forward_marginals()
    x0 = torch.cat([model.prepare(data[i:i + 500]).cpu() for i in range(0, len(data), 500)])
    return information_curve(a.cpu(), s.cpu(), x0, **kwargs)

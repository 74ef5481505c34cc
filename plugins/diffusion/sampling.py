"""Sampling from a diffusion model's prior chain p(x_T) prod_t p(x_{t-1}|x_t).

Both samplers take any ``eps_model(x_t, t) -> eps`` callable (``t``: long tensor [B] of 0-based
step indices) and a :class:`.schedule.NoiseSchedule`.  They impose no gradient mode: wrap calls in
``torch.inference_mode()``.  Random draws come from ``generator`` in a fixed order: x_T first,
then one draw per stochastic step, so runs with equal seeds are identical.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
from torch import Tensor

from .schedule import NoiseSchedule, Variance, ddim_timesteps, p_mean_variance

__all__ = ["ddpm_sample", "ddim_sample", "ddim_step"]

EpsModel = Callable[[Tensor, Tensor], Tensor]


def _progress(steps: Sequence[int], enabled: bool | None, desc: str) -> Iterable[int]:
    """A progress bar: always (True), never (False), or as zoo.progress says (None: a terminal only; --quiet: off)."""
    if enabled is None:
        from zoo.progress import enabled as setting

        enabled = setting()
    if enabled is False:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, desc=desc, disable=None if enabled is None else False, leave=False)


def _randn(shape: Sequence[int], generator: torch.Generator | None, device: torch.device,
           dtype: torch.dtype) -> Tensor:
    return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)


def _start(shape: Sequence[int], x_T: Tensor | None, generator: torch.Generator | None,
           device: torch.device | str | None, dtype: torch.dtype) -> Tensor:
    if x_T is not None:
        if tuple(x_T.shape) != tuple(shape):
            raise ValueError(f"x_T has shape {list(x_T.shape)}, expected {list(shape)}")
        return x_T
    if device is None:
        device = generator.device if generator is not None else "cpu"
    return _randn(shape, generator, torch.device(device), dtype)


def ddpm_sample(eps_model: EpsModel, schedule: NoiseSchedule, shape: Sequence[int], *,
                variance: Variance = "fixed_small", clip_x0: bool = True,
                generator: torch.Generator | None = None, device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32, x_T: Tensor | None = None,
                progress: bool | None = False, stop: int = 0) -> Tensor:
    """Ancestral sampling, Algorithm 2 of Ho et al. (T - stop model calls):

        x_T ~ N(0, I);  for t = T..1:  x_{t-1} = mu_theta(x_t, t) + sigma_t z,  z ~ N(0, I)
        (z = 0 at t = 1)

    with mu_theta / sigma_t from :func:`.schedule.p_mean_variance` (``variance`` "fixed_small"
    = beta~_t, "fixed_large" = beta_t; ``clip_x0`` clamps the predicted x_0 to [-1, 1] before
    forming the mean, like diffusers' ``clip_sample``).  Returns x_0; with ``stop=1`` it stops at
    x_1 (a pixel-space DDPM's decoder p(x_0|x_1) makes x_0), the ``ddpm`` prior's ``sample``.
    """
    x = _start(shape, x_T, generator, device, dtype)
    batch = x.shape[0]
    for i in _progress(range(schedule.num_timesteps - 1, stop - 1, -1), progress, "DDPM"):
        t = torch.full((batch,), i, dtype=torch.long, device=x.device)
        p = p_mean_variance(schedule, eps_model(x, t), x, t, variance, clip_x0)
        if i > 0:
            x = p.mean + p.variance.sqrt() * _randn(x.shape, generator, x.device, x.dtype)
        else:
            x = p.mean
    return x


def ddim_step(x: Tensor, eps: Tensor, alpha_bar: float, alpha_bar_prev: float, *, eta: float = 0.0,
              clip_x0: bool = True, noise: Tensor | None = None) -> Tensor:
    """One DDIM update (Song et al. 2021, eq. 12) from step tau_i to tau_{i-1}:

        x0_hat  = (x - sqrt(1 - a) eps) / sqrt(a)                          (a = alpha_bar_{tau_i})
        sigma   = eta * sqrt((1 - a_prev) / (1 - a)) * sqrt(1 - a / a_prev)    (eq. 16)
        x_prev  = sqrt(a_prev) x0_hat + sqrt(1 - a_prev - sigma^2) eps + sigma z

    ``clip_x0`` clamps x0_hat to [-1, 1] (the direction term keeps the model's eps, as in
    diffusers with ``use_clipped_model_output=False``).  ``noise`` (z) is needed when sigma > 0.
    """
    x0 = (x - (1.0 - alpha_bar) ** 0.5 * eps) / alpha_bar ** 0.5
    if clip_x0:
        x0 = x0.clamp(-1.0, 1.0)
    sigma = eta * ((1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * (1.0 - alpha_bar / alpha_bar_prev)) ** 0.5
    out = alpha_bar_prev ** 0.5 * x0 + (1.0 - alpha_bar_prev - sigma**2) ** 0.5 * eps
    if sigma > 0:
        if noise is None:
            raise ValueError("ddim_step with eta > 0 needs noise")
        out = out + sigma * noise
    return out


def ddim_sample(eps_model: EpsModel, schedule: NoiseSchedule, shape: Sequence[int], *,
                num_steps: int = 50, eta: float = 0.0, clip_x0: bool = True,
                steps_offset: int = 0, set_alpha_to_one: bool = True,
                generator: torch.Generator | None = None, device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32, x_T: Tensor | None = None,
                progress: bool | None = False) -> Tensor:
    """DDIM sampling with S = ``num_steps`` <= T model calls (Song et al. 2021).

    Timesteps: diffusers' "leading" spacing, tau = (S-1, ..., 1, 0) * (T // S) + steps_offset
    (:func:`.schedule.ddim_timesteps`).  The step after the last one uses alpha_bar = 1
    (``set_alpha_to_one``) or alpha_bar_{0}.  eta = 0 is the deterministic DDIM, eta = 1 has the
    DDPM posterior's variance.  Matches diffusers' ``DDIMScheduler`` with the same settings
    (``steps_offset`` 0 is its default; ``google/ddpm-cifar10-32``'s DDIM pipeline uses 0).
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    taus = ddim_timesteps(schedule.num_timesteps, num_steps, steps_offset).tolist()
    ratio = schedule.num_timesteps // num_steps
    ab = schedule.alphas_cumprod.tolist()
    final = 1.0 if set_alpha_to_one else ab[0]
    x = _start(shape, x_T, generator, device, dtype)
    batch = x.shape[0]
    for tau in _progress(taus, progress, "DDIM"):
        prev = tau - ratio
        t = torch.full((batch,), tau, dtype=torch.long, device=x.device)
        eps = eps_model(x, t)
        noise = _randn(x.shape, generator, x.device, x.dtype) if eta > 0 else None
        x = ddim_step(x, eps, ab[tau], ab[prev] if prev >= 0 else final,
                      eta=eta, clip_x0=clip_x0, noise=noise)
    return x

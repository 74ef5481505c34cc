"""The DDPM noise schedule and variational bound (Ho et al. 2020) as pure functions.

A diffusion model is a latent-variable model with T latent layers x_1..x_T: the encoder is the
fixed Gaussian noising process q(x_{1:T}|x_0) and the prior is the learned Markov chain
p(x_T) prod_t p(x_{t-1}|x_t).  Its bound on -log p(x_0) (eq. 5 of Ho et al.) is

    L = L_T + sum_{t=2}^{T} L_{t-1} + L_0
    L_T     = KL(q(x_T|x_0) || N(0, I))
    L_{t-1} = KL(q(x_{t-1}|x_t, x_0) || p(x_{t-1}|x_t))                  t = 2..T
    L_0     = -log p(x_0|x_1)        (discretized Gaussian decoder, eq. 13)

Units: nats per sample (summed over all pixels and channels); :func:`bits_per_dim` converts.

Indexing.  The paper counts t = 1..T; tensors here (and in diffusers / improved-diffusion) are
0-based: **code index i is paper step t = i + 1**, i.e. ``betas[i]`` is beta_{i+1}, and the model
is called with ``i``.  So ``terms[:, i]`` of :class:`BoundTerms` is the paper's L_i (i = 0 the
decoder term, i >= 1 the KL of step i+1 -> i).  Data x_0 lives in [-1, 1] (8-bit images scaled
by x / 127.5 - 1).

Schedules are stored in float64; coefficients are gathered then cast to the data's dtype.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal, NamedTuple

import torch
from torch import Tensor

from zoo.distributions import LOG_2PI
from zoo.distributions import bits_per_dim  # re-exported: the one nats -> bits/dim conversion (D or a shape)

__all__ = [
    "linear_betas", "scaled_linear_betas", "cosine_betas", "NoiseSchedule", "check_timesteps", "ddim_timesteps",
    "q_mean_variance", "q_sample", "q_posterior", "predict_x0", "p_mean_variance", "PMeanVar",
    "normal_kl", "discretized_gaussian_log_likelihood", "prior_kl", "BoundTerms", "step_terms", "FIRST_VARIANCES",
    "variational_bound", "bits_per_dim", "Variance", "split_output", "learned_log_variance",
]

Variance = Literal["fixed_small", "fixed_large", "learned"]
FIRST_VARIANCES = ("beta_tilde_2", "beta_1")  # NoiseSchedule.first_variance: sigma_1^2 of p(x_0|x_1)
EpsModel = Callable[[Tensor, Tensor], Tensor]


# --------------------------------------------------------------------------- beta schedules

def linear_betas(num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """Ho et al. sec. 4: beta_t linear from 1e-4 to 0.02 (T = 1000).  float64 [T].

    Not rescaled for T != 1000 (diffusers' convention; improved-diffusion multiplies both ends
    by 1000 / T)."""
    if num_timesteps < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")
    return torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)


def scaled_linear_betas(num_timesteps: int = 1000, beta_start: float = 0.0015, beta_end: float = 0.0195) -> Tensor:
    """Latent diffusion's "linear" schedule (Rombach et al. 2022; diffusers' ``scaled_linear``): sqrt(beta_t)
    linear from sqrt(beta_start) to sqrt(beta_end), beta_t = (sqrt(b_0) + t/(T-1) (sqrt(b_1) - sqrt(b_0)))^2.
    float64 [T]."""
    if num_timesteps < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")
    return torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_timesteps, dtype=torch.float64) ** 2


def cosine_betas(num_timesteps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Nichol & Dhariwal (2021) eq. 17:  alpha_bar(t) = f(t) / f(0),
    f(t) = cos^2(((t / T) + s) / (1 + s) * pi / 2),  beta_t = min(1 - alpha_bar(t) / alpha_bar(t-1), max_beta)."""
    if num_timesteps < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")
    steps = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


# --------------------------------------------------------------------------- the schedule

@dataclass(frozen=True)
class NoiseSchedule:
    """beta_1..beta_T and the quantities derived from them (all float64 [T], 0-based)."""

    betas: Tensor
    alphas_cumprod: Tensor = field(init=False)        # alpha_bar_t = prod_{s<=t} (1 - beta_s)
    alphas_cumprod_prev: Tensor = field(init=False)   # alpha_bar_{t-1}, with alpha_bar_0 = 1
    posterior_variance: Tensor = field(init=False)    # beta~_t  (eq. 7)
    posterior_log_variance_clipped: Tensor = field(init=False)
    posterior_mean_coef1: Tensor = field(init=False)  # coefficient of x_0 in mu~_t (eq. 7)
    posterior_mean_coef2: Tensor = field(init=False)  # coefficient of x_t in mu~_t (eq. 7)
    # sigma_1^2 of the decoder p(x_0|x_1) under both fixed variances (beta~_1 = 0 cannot be used): "beta_tilde_2"
    # (Ho et al.'s code, for fixed-small and fixed-large alike) or "beta_1" (diffusers' fixed_large: beta_t at t=1 too)
    first_variance: str = "beta_tilde_2"
    small_log_variance: Tensor = field(init=False)    # log sigma_t^2 under fixed-small: beta~_t, t=1 as above
    large_log_variance: Tensor = field(init=False)    # log sigma_t^2 under fixed-large: beta_t, t=1 as above

    def __post_init__(self) -> None:
        betas = torch.as_tensor(self.betas, dtype=torch.float64)
        if betas.dim() != 1 or len(betas) == 0:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got shape {list(betas.shape)}")
        if not bool(((betas > 0) & (betas <= 1)).all()):
            raise ValueError("betas must lie in (0, 1]")
        ab = torch.cumprod(1.0 - betas, dim=0)
        ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
        # eq. 7: beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t
        post_var = betas * (1.0 - ab_prev) / (1.0 - ab)
        # beta~_1 = 0; like Ho et al.'s code, log-variance at t=1 uses beta~_2 instead ("clipped")
        first = post_var[1] if len(betas) > 1 else betas[0]
        post_logvar = torch.log(torch.cat([first.reshape(1), post_var[1:]]))
        set_ = object.__setattr__
        set_(self, "betas", betas)
        set_(self, "alphas_cumprod", ab)
        set_(self, "alphas_cumprod_prev", ab_prev)
        set_(self, "posterior_variance", post_var)
        set_(self, "posterior_log_variance_clipped", post_logvar)
        # eq. 7: mu~_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
        #              + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t
        set_(self, "posterior_mean_coef1", betas * ab_prev.sqrt() / (1.0 - ab))
        set_(self, "posterior_mean_coef2", (1.0 - ab_prev) * (1.0 - betas).sqrt() / (1.0 - ab))
        if self.first_variance not in FIRST_VARIANCES:
            raise ValueError(f"first_variance must be one of {', '.join(FIRST_VARIANCES)}, got {self.first_variance!r}")
        sigma1 = first if self.first_variance == "beta_tilde_2" else betas[0]
        set_(self, "small_log_variance", torch.cat([sigma1.log().reshape(1), post_logvar[1:]]))
        set_(self, "large_log_variance", torch.cat([sigma1.log().reshape(1), betas[1:].log()]))

    @property
    def num_timesteps(self) -> int:
        return len(self.betas)

    @classmethod
    def linear(cls, num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "NoiseSchedule":
        return cls(linear_betas(num_timesteps, beta_start, beta_end))

    @classmethod
    def scaled_linear(cls, num_timesteps: int = 1000, beta_start: float = 0.0015,
                      beta_end: float = 0.0195) -> "NoiseSchedule":
        return cls(scaled_linear_betas(num_timesteps, beta_start, beta_end))

    @classmethod
    def cosine(cls, num_timesteps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> "NoiseSchedule":
        return cls(cosine_betas(num_timesteps, s, max_beta))


def check_timesteps(schedule: NoiseSchedule, t: Tensor | int) -> Tensor:
    """Return ``t`` as a long tensor; ValueError unless every entry is in [0, T-1]."""
    t = torch.as_tensor(t)
    if t.is_floating_point():
        if not bool((t == t.round()).all()):
            raise ValueError(f"timesteps must be integers, got {t.tolist()}")
        t = t.long()
    T = schedule.num_timesteps
    if t.numel() and (int(t.min()) < 0 or int(t.max()) > T - 1):
        raise ValueError(
            f"timestep out of range: valid indices are 0..{T - 1} (T = {T}), "
            f"got min {int(t.min())}, max {int(t.max())}"
        )
    return t.long()


def _gather(arr: Tensor, t: Tensor, x: Tensor) -> Tensor:
    """arr[t] cast to x's dtype/device, shaped [B, 1, 1, ...] to broadcast against x."""
    out = arr.to(x.device)[t.to(x.device)].to(x.dtype)
    return out.reshape(out.shape + (1,) * (x.dim() - out.dim()))


def ddim_timesteps(num_timesteps: int, num_steps: int, steps_offset: int = 0) -> Tensor:
    """DDIM's sub-sequence of steps, diffusers' "leading" spacing (descending, long [S]):

        tau_i = i * (T // S) + steps_offset,  i = S-1, ..., 0
    """
    if not 1 <= num_steps <= num_timesteps:
        raise ValueError(f"DDIM steps must be in 1..T = {num_timesteps}, got {num_steps}")
    ratio = num_timesteps // num_steps
    taus = torch.arange(num_steps - 1, -1, -1, dtype=torch.long) * ratio + steps_offset
    if steps_offset < 0 or int(taus[0]) > num_timesteps - 1:
        raise ValueError(
            f"steps_offset {steps_offset} puts DDIM timesteps outside 0..{num_timesteps - 1}"
        )
    return taus


# --------------------------------------------------------------------------- forward process

def q_mean_variance(schedule: NoiseSchedule, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """q(x_t|x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)  (eq. 4): mean, variance, log-variance."""
    t = check_timesteps(schedule, t)
    ab = _gather(schedule.alphas_cumprod, t, x0)
    var = (1.0 - ab).expand_as(x0)
    return ab.sqrt() * x0, var, var.log()


def q_sample(schedule: NoiseSchedule, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """Eq. 4 reparametrised: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,  eps ~ N(0, I)."""
    t = check_timesteps(schedule, t)
    ab = _gather(schedule.alphas_cumprod, t, x0)
    return ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise


def q_posterior(schedule: NoiseSchedule, x0: Tensor, xt: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """q(x_{t-1}|x_t, x_0) = N(mu~_t(x_t, x_0), beta~_t I)  (eqs. 6-7): mean, variance, clipped log-variance."""
    t = check_timesteps(schedule, t)
    mean = _gather(schedule.posterior_mean_coef1, t, xt) * x0 + _gather(schedule.posterior_mean_coef2, t, xt) * xt
    var = _gather(schedule.posterior_variance, t, xt).expand_as(xt)
    logvar = _gather(schedule.posterior_log_variance_clipped, t, xt).expand_as(xt)
    return mean, var, logvar


def predict_x0(schedule: NoiseSchedule, xt: Tensor, t: Tensor, eps: Tensor) -> Tensor:
    """Invert eq. 4: x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
    t = check_timesteps(schedule, t)
    ab = _gather(schedule.alphas_cumprod, t, xt)
    return (xt - (1.0 - ab).sqrt() * eps) / ab.sqrt()


class PMeanVar(NamedTuple):
    mean: Tensor
    variance: Tensor
    log_variance: Tensor
    pred_x0: Tensor


def p_mean_variance(schedule: NoiseSchedule, eps: Tensor, xt: Tensor, t: Tensor,
                    variance: Variance = "fixed_small", clip_x0: bool = False) -> PMeanVar:
    """p(x_{t-1}|x_t) = N(mu_theta, sigma_t^2 I) from the predicted noise ``eps``.

    mu_theta = mu~_t(x_t, x0_hat) with x0_hat = predict_x0(x_t, eps), which (unclipped) equals
    eq. 11:  mu_theta = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t).
    sigma_t^2: "fixed_small" = beta~_t, "fixed_large" = beta_t, "learned" = :func:`learned_log_variance` of the
    output's second half v (``eps`` is then the network's whole output, eps and v); at t=1 (beta~_1 = 0) both use the schedule's
    ``first_variance``: beta~_2 (the default, Ho et al.'s code: the decoder is not over-dispersed) or beta_1
    (diffusers' fixed_large).  The choice moves L_0 = -log p(x_0|x_1) alone.
    ``clip_x0`` clamps x0_hat to [-1, 1] first (sampling-time trick; changes the model).
    """
    t = check_timesteps(schedule, t)
    eps, v = split_output(eps, variance, xt)
    x0 = predict_x0(schedule, xt, t, eps)
    if clip_x0:
        x0 = x0.clamp(-1.0, 1.0)
    mean, _, _ = q_posterior(schedule, x0, xt, t)
    if variance == "fixed_small":
        logvar = _gather(schedule.small_log_variance, t, xt)
    elif variance == "fixed_large":
        logvar = _gather(schedule.large_log_variance, t, xt)
    else:
        logvar = learned_log_variance(schedule, v, t)
    logvar = logvar.expand_as(xt)
    return PMeanVar(mean, logvar.exp(), logvar, x0)


def split_output(out: Tensor, variance: Variance, xt: Tensor) -> tuple[Tensor, Tensor | None]:
    """(eps, v) from the network's output: under ``learned`` variances the output has twice the channels
    of x_t (eps first, v second; Nichol & Dhariwal 2021 sec. 3.1), else it is eps alone (v None)."""
    if variance in ("fixed_small", "fixed_large"):
        return out, None
    if variance != "learned":
        raise ValueError(f"variance must be 'fixed_small', 'fixed_large' or 'learned', got {variance!r}")
    if out.dim() != xt.dim() or out.shape[1] != 2 * xt.shape[1] or out.shape[2:] != xt.shape[2:]:
        raise ValueError(f"learned variances: the network output {list(out.shape)} must have twice the channels "
                         f"of x_t {list(xt.shape)} (eps, then v)")
    eps, v = out.chunk(2, dim=1)
    return eps, v


def learned_log_variance(schedule: NoiseSchedule, v: Tensor, t: Tensor) -> Tensor:
    """Nichol & Dhariwal (2021) eq. 15, log Sigma_theta(x_t, t) = v log beta_t + (1 - v) log beta~_t,
    v the network's unconstrained output (v = 0: fixed-small, v = 1: fixed-large).  At t = 1, where
    beta~_1 = 0, log beta~_2 stands for log beta~_1 (as in their code: ``posterior_log_variance_clipped``),
    so sigma_1^2 moves between beta~_2 and beta_1.  Units: log of a variance (of x_{t-1})."""
    lo = _gather(schedule.posterior_log_variance_clipped, t, v)
    hi = _gather(schedule.betas.log(), t, v)
    return v * hi + (1.0 - v) * lo


# --------------------------------------------------------------------------- bound terms

def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """Elementwise KL(N(m1, v1) || N(m2, v2)) in nats:
    0.5 * (log v2 - log v1 + v1 / v2 + (m1 - m2)^2 / v2 - 1)."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def discretized_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """Elementwise log p(x) of Ho et al.'s decoder (eq. 13) for 8-bit data scaled to [-1, 1]:

        p(x) = Phi((x + 1/255 - mu) / sigma) - Phi((x - 1/255 - mu) / sigma)

    (bin width 2/255 centred on x), with the lowest bin's lower edge at -inf and the highest
    bin's upper edge at +inf, so the 256 bin masses sum to 1.  ``log_scale`` = log sigma.
    """
    inv_sigma = torch.exp(-log_scale)
    upper = (x - mean + 1.0 / 255.0) * inv_sigma
    lower = (x - mean - 1.0 / 255.0) * inv_sigma
    log_cdf_upper = torch.special.log_ndtr(upper)           # log Phi(upper): used at x = -1
    log_one_minus_cdf_lower = torch.special.log_ndtr(-lower)  # log (1 - Phi(lower)): at x = +1
    mass = (torch.special.ndtr(upper) - torch.special.ndtr(lower)).clamp(min=1e-12)
    return torch.where(x < -0.999, log_cdf_upper,
                       torch.where(x > 0.999, log_one_minus_cdf_lower, mass.log()))


def prior_kl(schedule: NoiseSchedule, x0: Tensor) -> Tensor:
    """L_T = KL(q(x_T|x_0) || N(0, I)) per sample (nats, summed over dimensions)."""
    t = torch.full((x0.shape[0],), schedule.num_timesteps - 1, dtype=torch.long)
    mean, _, logvar = q_mean_variance(schedule, x0, t)
    kl = normal_kl(mean, logvar, torch.zeros_like(mean), torch.zeros_like(logvar))
    return kl.flatten(1).sum(1)


def step_terms(schedule: NoiseSchedule, eps_model: EpsModel, x0: Tensor, t: Tensor, noise: Tensor,
               variance: Variance = "fixed_small", clip_x0: bool = False, continuous: bool = False) -> Tensor:
    """L_i for one timestep index i per row of x0 (nats per row), from x_{i+1} = q_sample(x0, i, noise):

        i >= 1:  L_i = KL(q(x_i | x_{i+1}, x_0) || p(x_i | x_{i+1}))                    (eq. 5)
        i = 0:   L_0 = -log p(x_0 | x_1): the discretized Gaussian of eq. 13 on 8-bit data, or
                 (``continuous``, a diffusion prior over a continuous z) the Gaussian density
                 N(x_0; mu_theta, sigma_1^2)
    """
    xt = q_sample(schedule, x0, t, noise)
    p = p_mean_variance(schedule, eps_model(xt, t), xt, t, variance, clip_x0)
    q_mean, _, q_logvar = q_posterior(schedule, x0, xt, t)
    kl = normal_kl(q_mean, q_logvar, p.mean, p.log_variance).flatten(1).sum(1)
    first = t.to(kl.device) == 0
    if not bool(first.any()):
        return kl
    if continuous:
        log_p0 = -0.5 * (LOG_2PI + p.log_variance + (x0 - p.mean) ** 2 * torch.exp(-p.log_variance))
    else:
        log_p0 = discretized_gaussian_log_likelihood(x0, p.mean, 0.5 * p.log_variance)
    return torch.where(first, -log_p0.flatten(1).sum(1), kl)


@dataclass
class BoundTerms:
    """The variational bound per sample, in nats.

    total:     [B] L_T + the (weighted) sum of ``terms``: the bound, or its unbiased estimate
    prior:     [B] L_T
    terms:     [B, K] L_i for the timestep indices in ``timesteps`` (index 0 = decoder L_0)
    timesteps: [K] long, the indices i evaluated (all 0..T-1 when ``exact``)
    exact:     True when every timestep was evaluated once with weight 1
    """

    total: Tensor
    prior: Tensor
    terms: Tensor
    timesteps: Tensor
    exact: bool


def variational_bound(schedule: NoiseSchedule, eps_model: EpsModel, x0: Tensor, *,
                      timesteps: Tensor | None = None, weights: Tensor | None = None,
                      num_timesteps: int | None = None, variance: Variance = "fixed_small",
                      clip_x0: bool = False, generator: torch.Generator | None = None,
                      chunk: int = 1, continuous: bool = False) -> BoundTerms:
    """Bound L = L_T + sum_{i=0}^{T-1} L_i on -log p(x_0) per sample (nats); the one implementation
    (the ``ddpm`` prior evaluates its bound through it).

    Which indices i are evaluated (shared by the batch, or ``timesteps`` of shape ``[K, B]``: one
    column per image):
      * ``timesteps`` given: those, each term weighted by ``weights`` (default 1):
        L_hat = L_T + sum_k w_k L_{i_k}  (e.g. the prior's stratified sub-sample, E = the full sum);
      * else ``num_timesteps=None``: every i in 0..T-1 (exact sum);
      * else K = ``num_timesteps`` indices uniform with replacement:
        L_hat = L_T + T * (1/K) sum_k L_{i_k},  E[L_hat] = L.
    Each L_i uses one fresh noise draw x_{i+1} ~ q(.|x_0) (so even the "exact" sum is a one-sample
    Monte Carlo estimate over x_t, as in Ho et al.).  ``chunk`` timesteps are stacked into one
    ``eps_model`` call.  ``continuous``: L_0 is a Gaussian density (a diffusion prior over a
    continuous z) instead of the 8-bit decoder.  No gradient mode is imposed here.  ``clip_x0=True``
    reproduces improved-diffusion's ``calc_bpd_loop`` default.
    """
    T = schedule.num_timesteps
    uniform = timesteps is None and num_timesteps is not None
    if timesteps is not None:
        timesteps = torch.as_tensor(timesteps, dtype=torch.long).cpu()
        if timesteps.dim() == 2 and timesteps.shape[1] != x0.shape[0]:
            raise ValueError(f"timesteps of shape {list(timesteps.shape)}: expected [K] or [K, {x0.shape[0]}]")
    elif num_timesteps is None:
        timesteps = torch.arange(T, dtype=torch.long)
    else:
        if num_timesteps < 1:
            raise ValueError(f"num_timesteps must be >= 1 or None, got {num_timesteps}")
        timesteps = torch.randint(0, T, (num_timesteps,), generator=generator,
                                  device=generator.device if generator is not None else "cpu")
        timesteps = timesteps.cpu()
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    b = x0.shape[0]
    columns: list[Tensor] = []
    for start in range(0, len(timesteps), chunk):
        ts = timesteps[start:start + chunk]
        k = len(ts)
        # [k*B]: B rows at ts[0], then ts[1], ... (a [k, B] chunk gives each image its own index)
        t = (ts.reshape(-1) if ts.dim() == 2 else ts.repeat_interleave(b)).to(x0.device)
        x_rep = x0.repeat(k, *([1] * (x0.dim() - 1)))
        noise = torch.randn(x_rep.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        columns.append(step_terms(schedule, eps_model, x_rep, t, noise, variance, clip_x0, continuous).view(k, b).T)
    terms = torch.cat(columns, dim=1) if columns else x0.new_zeros(b, 0)
    prior = prior_kl(schedule, x0)
    if uniform:
        body = T * terms.mean(1)
    elif weights is not None:
        body = (terms * torch.as_tensor(weights).to(terms)).sum(1)
    else:
        body = terms.sum(1)
    exact = not uniform and weights is None and timesteps.dim() == 1 and len(timesteps) == T and bool(
        torch.equal(timesteps, torch.arange(T)))
    return BoundTerms(total=prior + body, prior=prior, terms=terms, timesteps=timesteps, exact=exact)

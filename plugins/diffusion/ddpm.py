"""DDPM (Ho et al. 2020) as a latent-variable model: prior ``ddpm``, encoder ``ddpm-noising``,
decoder ``ddpm-decoder``.

A diffusion model is the zoo's triple with T latent layers x_1..x_T:

    encoder  q(x_1|x_0) of the fixed noising process (no parameters; ``ddpm-noising``)
    prior    p(x_1) = int p(x_T) prod_{t>=2} p(x_{t-1}|x_t) dx_{2:T}   (UNet + schedule; ``ddpm``)
    decoder  p(x_0|x_1): discretized Gaussian on 8-bit data whose mean is the UNet's at t = 1
             (``ddpm-decoder``; it borrows the prior's UNet, it has no weights of its own)

and the ELBO of ``LatentModel.elbo`` is exactly Ho et al.'s eq. 5 bound:

    -ELBO = distortion + rate,  distortion = L_0 = -log p(x_0|x_1),
                                rate = L_T + sum_{t=2}^{T} L_{t-1}           (``prior.infer``)

Paper step t is code index i = t - 1 (see :mod:`.schedule`): L_i for i >= 1 is the KL of the
step i+1 -> i, computed with the UNet at index i.  With ``eval_timesteps: K`` the sum over
i = 1..T-1 is estimated from K indices drawn by stratified uniform sampling (the range split into
K contiguous strata of sizes n_j, one index u_j uniform in each, estimate sum_j n_j L_{u_j}),
drawn independently for every image (so the per-image bounds are independent and their standard
error over the images covers the timestep draw): unbiased, E = the full sum.  The strata grow quadratically with t (the first
ones hold a single step, so the large early terms are exact; the tiny late terms share wide strata).  ``eval_timesteps: null`` evaluates every step
(T - 1 UNet calls per batch).  Either way each L_i uses one fresh draw of x_{i+1} ~ q(.|x_0),
as in Ho et al.

The same prior under a VAE (latent diffusion): given any other posterior q(z|x), ``infer``
returns rate = E_q[log q(z|x)] + L(z) >= KL(q||p), where L(z) >= -log p(z) is the same bound on
the continuous z (L_0 a Gaussian density there), so the model's ELBO stays a lower bound.
``log_prob(z)`` is -L(z) (``exact = False``).

Training: card ``objective: {loss: simple}`` trains the pixel model with Ho et al.'s L_simple
(epsilon MSE at one uniform t per image) through :meth:`DDPMPrior.training_loss`; the terms it
returns for logging are the one-sample unbiased estimate of the bound from the same forward pass.
``LatentModel.elbo`` always reports the true bound.
"""
from __future__ import annotations

import math
import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from zoo.contracts import ClosedFormEntropy, Observation, SamplerOption, Series, Term, has
from zoo.distributions import LOG_2PI, sum_event
from zoo.errors import ShapeError
from zoo.likelihoods import SignedUnitLikelihood

from .binding import BoundToPrior
from .sampling import ddim_sample, ddpm_sample
from .schedule import (
    FIRST_VARIANCES,
    NoiseSchedule,
    check_timesteps,
    ddim_timesteps,
    discretized_gaussian_log_likelihood,
    p_mean_variance,
    prior_kl,
    q_sample,
    split_output,
    step_terms,
    variational_bound,
)
from .mlp import MLPDenoiser
from .unet import UNet, UNetConfig

__all__ = ["DDPMPrior", "NoisingEncoder", "NoisingPosterior", "DDPMDecoder", "DiscretizedGaussian",
           "UNET_PRESETS", "sample", "DDIM"]

VARIANCES = {"fixed-small": "fixed_small", "fixed-large": "fixed_large",
             "fixed_small": "fixed_small", "fixed_large": "fixed_large", "learned": "learned"}
UNET_PRESETS = {
    "ddpm-cifar10": UNetConfig.ddpm_cifar10,
    "digits-8x8": UNetConfig.digits_8x8,
    # google/ddpm-{celebahq,church,bedroom,cat}-256: block_out_channels 128,128,256,256,512,512
    "ddpm-256": lambda: UNetConfig(sample_size=256, channels=128, channel_mult=(1, 1, 2, 2, 4, 4),
                                   attention_resolutions=(16,)),
}
MAX_ROWS = 1024  # rows stacked per step of the bound when several timesteps are evaluated together
# rows per UNet call while evaluating the bound, by device type: on a CPU large calls run slower per row (one
# 32x32 ddpm-cifar10 call: 91.5 ms/row at 200 rows, about 64 ms/row at 8-32 rows, issue 22), so the stacked
# rows are fed in slices of UNET_ROWS, each in channels_last memory format (faster convolutions on a CPU:
# tools/bench_unet.py --channels-last; end to end: tools/bench_ddpm_elbo.py); an accelerator takes them whole
UNET_ROWS = {"cpu": 16}


def _unet_in_slices(unet: nn.Module, device: torch.device):
    """``unet(x, t)`` over at most UNET_ROWS[device] rows per call, channels_last input (the same outputs, row
    for row, up to float rounding)."""
    rows = UNET_ROWS.get(device.type)
    if rows is None:
        return unet

    def one(x: Tensor, t: Tensor) -> Tensor:
        if x.dim() == 4:
            return unet(x.contiguous(memory_format=torch.channels_last), t).contiguous()
        return unet(x, t)

    def call(x: Tensor, t: Tensor) -> Tensor:
        if x.shape[0] <= rows:
            return one(x, t)
        return torch.cat([one(x[i:i + rows], t[i:i + rows]) for i in range(0, x.shape[0], rows)])
    return call


def _unet_config(spec: Any, channels: int, size: int, out_mult: int = 1) -> UNetConfig:
    if isinstance(spec, str):
        if spec not in UNET_PRESETS:
            raise ValueError(f"unknown unet preset {spec!r}; choose one of {sorted(UNET_PRESETS)} or give a mapping")
        cfg = UNET_PRESETS[spec]()
    else:
        d = dict(spec or {})
        d.setdefault("in_channels", channels)
        d.setdefault("out_channels", channels * out_mult)
        d.setdefault("sample_size", size)
        cfg = UNetConfig.from_dict(d)
    if cfg.sample_size != size or cfg.in_channels != channels or cfg.out_channels != channels * out_mult:
        raise ShapeError(f"the UNet is for images of shape [{cfg.in_channels}, {cfg.sample_size}, {cfg.sample_size}] "
                         f"(out_channels {cfg.out_channels}) but the diffused variable has shape "
                         f"[{channels}, {size}, {size}]" + (f" and learned variances need out_channels {channels * out_mult}"
                                                           if out_mult > 1 else "")
                         + ": a pretrained UNet only works at its own image size")
    return cfg


def _strata(first: int, last: int, k: int | None, generator=None, draws: int | None = None) -> tuple[Tensor, Tensor]:
    """Indices in [first, last] and their weights: all of them (weight 1) when ``k`` is None or
    covers the range, else one uniform index in each of k contiguous strata, weighted by the
    stratum's size (unbiased for the sum over the range).  ``draws=B``: an independent draw per
    image, indices ``[k, B]`` (so per-image bounds are independent and their standard error is honest)."""
    n = last - first + 1
    if n <= 0:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0)
    if k is None or k >= n:
        return torch.arange(first, last + 1), torch.ones(n)
    # strata grow quadratically with t: the terms of the first steps are large and change fast (the
    # first strata have one step each, i.e. are exact), the late ones are tiny and flat
    edges = [first + round(n * (j / k) ** 2) for j in range(k + 1)]
    for j in range(1, k + 1):
        edges[j] = max(edges[j], edges[j - 1] + 1)
    edges[k] = first + n
    for j in range(k - 1, 0, -1):
        edges[j] = min(edges[j], edges[j + 1] - 1)
    sizes = torch.tensor([edges[j + 1] - edges[j] for j in range(k)], dtype=torch.float64)
    shape = (k,) if draws is None else (k, draws)
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    lo = torch.tensor(edges[:-1], dtype=torch.float64)
    sz = sizes if draws is None else sizes[:, None]
    idx = (lo if draws is None else lo[:, None]) + torch.floor(u * sz)
    return idx.long(), sizes.float()


class DDPMPrior(nn.Module):
    """The reverse chain p(x_T) prod_t p(x_{t-1}|x_t) with Ho et al.'s epsilon-prediction UNet.

    Card arguments: ``unet`` (a preset name or UNetConfig fields; in/out channels and size default
    to the latent shape), ``timesteps`` T, ``schedule`` linear (``beta_start``, ``beta_end``),
    scaled-linear (latent diffusion's: sqrt(beta) linear between the same ends) or cosine (``cosine_s``), ``variance`` fixed-small (beta~_t) or fixed-large (beta_t),
    ``first_variance`` sigma_1^2 at t = 1 under either (beta~_1 = 0): ``beta_tilde_2`` (default, Ho et al.'s code) or
    ``beta_1`` (diffusers' fixed_large), which moves L_0 alone,
    ``eval_timesteps`` K for the stratified sub-sampled bound (null: exact), ``clip_sample``
    (clamp the predicted x_0 to [-1, 1] while sampling; never in the bound).

    Improved DDPM (Nichol & Dhariwal 2021): ``variance: learned`` makes the network output eps and a
    second set v, Sigma = exp(v log beta_t + (1 - v) log beta~_t) (:func:`.schedule.learned_log_variance`);
    ``denoiser: {name: mlp, width, blocks, time_dim}`` replaces the UNet by a residual MLP
    (:mod:`.mlp`) for a latent of any shape (a VAE's vector latent).  The training losses
    ``hybrid`` and ``vlb`` (card ``objective``) are in :meth:`training_loss`."""

    exact = False  # log_prob is the variational bound
    family = "diffusion"
    samplers = ("ddim",)  # zoo sample --steps S --eta E; model.sample(n, sampler="ddim", steps=S)
    # what infer() adds to the ELBO terms (diagnose prints and plots them): the per-step curve and the prior term
    results = (Series("L_t", "per-timestep terms L_t", index="t", items="steps", log_scale=True,
                      note="paper timestep: term L_(t-1) = KL at step t -> t-1"),
               Term("L_T", "prior term L_T = KL(q(x_T|x_0)||N(0,I))"))
    test_shapes = {"latent_shape": (1, 8, 8), "data_shape": (1, 8, 8)}
    test_args = {"unet": "digits-8x8", "timesteps": 20, "eval_timesteps": 4}

    def __init__(self, *, latent_shape, data_shape=None, unet: Any = None, timesteps: int = 1000,
                 schedule: str = "linear", beta_start: float = 1e-4, beta_end: float = 0.02,
                 cosine_s: float = 0.008, variance: str = "fixed-small", eval_timesteps: int | None = None,
                 clip_sample: bool = True, first_variance: str = "beta_tilde_2", denoiser: Any = None):
        super().__init__()
        shape = tuple(int(v) for v in latent_shape)
        if variance not in VARIANCES:
            raise ValueError(f"variance must be 'fixed-small', 'fixed-large' or 'learned', got {variance!r}")
        out_mult = 2 if VARIANCES[variance] == "learned" else 1
        self.latent_shape = shape
        if denoiser is not None:
            if unet is not None:
                raise ValueError("the ddpm prior takes either 'unet' or 'denoiser' (an MLP), not both")
            # the attribute keeps the name 'unet': the noise network, whatever its architecture
            self.unet = MLPDenoiser.from_spec(denoiser, shape, out_mult)
        else:
            if len(shape) != 3 or shape[1] != shape[2]:
                raise ShapeError(f"the ddpm prior's UNet diffuses square images: latent shape must be [C, H, H], got "
                                 f"{list(shape)} (a vector latent takes 'denoiser: {{name: mlp}}')")
            self.unet = UNet(_unet_config(unet, shape[0], shape[1], out_mult))
        if not isinstance(timesteps, int) or isinstance(timesteps, bool) or timesteps < 2:
            raise ValueError(f"timesteps must be an integer >= 2, got {timesteps!r}")
        if schedule == "linear":
            self.schedule = NoiseSchedule.linear(timesteps, beta_start, beta_end)
        elif schedule == "scaled-linear":
            self.schedule = NoiseSchedule.scaled_linear(timesteps, beta_start, beta_end)
        elif schedule == "cosine":
            self.schedule = NoiseSchedule.cosine(timesteps, cosine_s)
        else:
            raise ValueError(f"schedule must be 'linear', 'scaled-linear' or 'cosine', got {schedule!r}")
        if first_variance not in FIRST_VARIANCES:
            raise ValueError(f"first_variance must be one of {', '.join(FIRST_VARIANCES)} (sigma_1^2 of p(x_0|x_1)), "
                             f"got {first_variance!r}")
        self.schedule = dataclasses.replace(self.schedule, first_variance=first_variance)
        self.variance = VARIANCES[variance]
        if eval_timesteps is not None and (not isinstance(eval_timesteps, int) or eval_timesteps < 1):
            raise ValueError(f"eval_timesteps must be a positive integer or null (exact), got {eval_timesteps!r}")
        self.eval_timesteps = eval_timesteps
        self.clip_sample = bool(clip_sample)
        self.pixel = False  # set by bind(): True under the ddpm-noising encoder (x_1 is the latent)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    # -- wiring ----------------------------------------------------------------------------------
    def bind(self, model) -> None:
        self.pixel = isinstance(model.encoder, NoisingEncoder)
        if self.pixel and tuple(model.data_shape) != self.latent_shape:
            raise ShapeError(f"a pixel-space DDPM needs latent shape = data shape, got latent {list(self.latent_shape)} "
                             f"and data {list(model.data_shape)}")

    @property
    def num_timesteps(self) -> int:
        return self.schedule.num_timesteps

    def forward_marginals(self) -> tuple[Tensor, Tensor]:
        """(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)) for t = 1..T: q(x_t|x_0) (zoo.contracts.GaussianForwardProcess)."""
        ab = self.schedule.alphas_cumprod.double()
        return ab.sqrt(), (1.0 - ab).sqrt()

    def eps(self, x: Tensor, t: Tensor) -> Tensor:
        """epsilon_theta(x_t, t), t the 0-based step index (ValueError outside 0..T-1)."""
        t = check_timesteps(self.schedule, t if torch.is_tensor(t) else torch.tensor(t))
        return split_output(self.unet(x, t), self.variance, x)[0]

    def _log_snrs(self) -> Tensor:
        """log SNR_t = log(alpha_bar_t / (1 - alpha_bar_t)) at the 0-based step indices, decreasing."""
        ab = self.schedule.alphas_cumprod.double()
        return torch.log(ab) - torch.log1p(-ab)

    def log_snr_range(self) -> tuple[float, float]:
        """(log SNR at t = T, log SNR at t = 1): the range the UNet was trained on (zoo.contracts.Denoiser)."""
        lam = self._log_snrs()
        return float(lam[-1]), float(lam[0])

    def denoise(self, z: Tensor, log_snr: Tensor) -> Tensor:
        """x_hat = (z - sigma eps_theta(z, t)) / alpha for z = alpha x + sigma eps, alpha^2 = sigmoid(log_snr)
        (zoo.contracts.Denoiser); t is the fractional step whose log-SNR is ``log_snr``, linearly interpolated
        between the steps (the UNet's sinusoidal time embedding takes real t)."""
        rev = self._log_snrs().flip(0)                                    # increasing
        lam = log_snr.detach().double().cpu().clamp(float(rev[0]), float(rev[-1]))
        j = torch.searchsorted(rev, lam).clamp(1, len(rev) - 1)
        w = (lam - rev[j - 1]) / (rev[j] - rev[j - 1])
        t = (len(rev) - 1) - (j - 1 + w)                                  # 0-based, real
        out = self.unet(z, t.to(device=z.device, dtype=z.dtype))  # real t: the time embedding is sinusoidal
        eps = split_output(out, self.variance, z)[0]  # the eps half of a learned-variance output
        view = (-1,) + (1,) * (z.dim() - 1)
        lam = log_snr.to(z.dtype).view(view)
        return (z - torch.sigmoid(-lam).sqrt() * eps) / torch.sigmoid(lam).sqrt()

    @property
    def estimator(self) -> str:
        T = self.num_timesteps
        k = self.eval_timesteps
        how = (f"exact sum over all {T - 1} KL steps" if k is None or k >= T - 1 else
               f"unbiased stratified estimate from {k} of {T - 1} KL steps (one uniform t in each of {k} "
               f"strata growing quadratically with t, weighted by stratum size), drawn per image")
        if not self.pixel:  # the same chain as the prior of a VAE's latent (latent diffusion)
            return (f"latent diffusion: rate = E_q log q(z|x) + L(z), an upper bound on KL(q(z|x)||p(z)); L(z) is the "
                    f"DDPM bound on the continuous z (T={T}): L_T + L_0 (a Gaussian density, evaluated exactly) + "
                    f"sum_(t=2..T) L_(t-1), {how}; one z_t ~ q(z_t|z) per term")
        return (f"DDPM variational bound (Ho et al. 2020 eq. 5), T={T}: rate = L_T + sum_(t=2..T) L_(t-1), {how}; "
                f"distortion = L_0 (discretized Gaussian decoder at t=1); one x_t ~ q(x_t|x_0) per term")

    # -- the bound -------------------------------------------------------------------------------
    def _rate(self, x0: Tensor, first: int, continuous: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """L_T + the (sub-sampled) sum of L_first .. L_{T-1}, and the per-step curve for diagnose."""
        T, b = self.num_timesteps, x0.shape[0]
        # one independent stratified draw per image: the per-image bounds are independent estimates
        ts, weights = _strata(max(first, 1), T - 1, self.eval_timesteps, draws=b)
        if ts.dim() == 1:  # every step evaluated: the same for all images
            ts = ts[:, None].expand(len(ts), b)
        if first == 0:  # L_0 (a continuous z's density term) exactly, never inside a sub-sampled stratum
            ts = torch.cat([torch.zeros(1, b, dtype=ts.dtype), ts])
            weights = torch.cat([torch.ones(1), weights])
        bound = variational_bound(self.schedule, _unet_in_slices(self.unet, x0.device), x0, timesteps=ts, weights=weights,
                                  variance=self.variance, chunk=max(1, MAX_ROWS // max(b, 1)),
                                  continuous=continuous)
        terms = bound.terms                                               # [B, K]
        at = ts.T.to(x0.device)                                           # [B, K]
        curve = terms.new_zeros(b, T).scatter(1, at, terms.detach())
        count = terms.new_zeros(b, T).scatter(1, at, 1.0)
        return bound.total, {"L_T": bound.prior.detach(), "L_t": curve, "L_t_count": count}

    def infer(self, q) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(z, rate, extras). Under the noising encoder: z = x_1 ~ q(x_1|x_0) and rate = L_T + sum_{t>=2} L_{t-1};
        under any other encoder: z ~ q(z|x) and rate = E_q log q(z|x) + L(z) (an upper bound on the KL)."""
        if isinstance(q, NoisingPosterior):
            rate, extras = self._rate(q.x0, 1, continuous=False)
            return q.rsample(), rate, extras
        z = q.rsample()
        bound, extras = self._rate(z, 0, continuous=True)
        log_q = -q.entropy() if has(q, ClosedFormEntropy) else q.log_prob(z)
        return z, log_q + bound, extras

    def log_prob(self, z: Tensor) -> Tensor:
        """-L(z) <= log p(z): the diffusion bound on a continuous variable (stochastic; any leading dims)."""
        lead = z.shape[: z.dim() - len(self.latent_shape)]
        flat = z.reshape(-1, *self.latent_shape)
        bound, _ = self._rate(flat, 0, continuous=True)
        return -bound.reshape(lead)

    # -- training --------------------------------------------------------------------------------
    LOSSES = ("simple", "hybrid", "vlb")
    TIMESTEP_SAMPLING = ("uniform", "importance")

    def training_loss(self, q, loss: str = "simple", *, vlb_weight: float = 0.001,
                      timestep_sampling: str = "uniform"):
        """A surrogate loss of the pixel model (card ``objective: {loss: NAME, ...}``), one t per image:

        * ``simple``: Ho et al.'s L_simple = ||eps - eps_theta(x_t, t)||^2 / D, t uniform in 0..T-1
          (fixed variances only: L_simple does not train learned ones);
        * ``hybrid`` (Nichol & Dhariwal eq. 16): L_simple + vlb_weight * L_vlb / D with the mean of
          p(x_{t-1}|x_t) from a stopped eps, so the L_vlb term trains the variances only (learned ones);
        * ``vlb``: the bound's one-sample estimate L_T + L_t / p(t) / D itself, with ``timestep_sampling:
          importance`` (p(t) from the history of L_t^2, :class:`.improved.ImportanceSampler`) or uniform.

        The terms returned for logging are the one-sample unbiased bound estimate from the same forward
        pass (distortion the L_0 part, rate the rest); ``LatentModel.elbo`` always reports the true bound."""
        from zoo.model import ELBO

        from .improved import ImportanceSampler, hybrid_loss, simple_loss, vlb_estimate

        if loss not in self.LOSSES:
            raise ValueError(f"ddpm prior: unknown objective.loss {loss!r}; choose 'elbo' (the bound), "
                             f"{', '.join(repr(n) for n in self.LOSSES)}")
        if timestep_sampling not in self.TIMESTEP_SAMPLING:
            raise ValueError(f"ddpm prior: objective.timestep_sampling must be one of "
                             f"{', '.join(self.TIMESTEP_SAMPLING)}, got {timestep_sampling!r}")
        if timestep_sampling == "importance" and loss != "vlb":
            raise ValueError("ddpm prior: objective.timestep_sampling 'importance' weights the bound's terms; it "
                             "goes with objective.loss 'vlb'")
        if not (isinstance(vlb_weight, (int, float)) and not isinstance(vlb_weight, bool) and vlb_weight >= 0):
            raise ValueError(f"ddpm prior: objective.vlb_weight must be a number >= 0, got {vlb_weight!r}")
        if loss == "simple" and self.variance == "learned":
            raise ValueError("ddpm prior: objective.loss 'simple' does not train learned variances (variance: "
                             "learned); use loss 'hybrid' or 'vlb'")
        if not isinstance(q, NoisingPosterior):
            raise ValueError(f"objective.loss {loss!r} trains a pixel-space DDPM (encoder ddpm-noising); a latent "
                             "diffusion model trains on its ELBO (objective.loss: elbo)")
        x0 = q.x0
        T, b, dims = self.num_timesteps, x0.shape[0], x0[0].numel()
        if timestep_sampling == "importance":
            if getattr(self, "importance", None) is None:
                self.importance = ImportanceSampler(T).to(x0.device)
            t, p_t = self.importance.sample(b)
            p_t = p_t.to(x0.dtype)
        else:
            t = torch.randint(0, T, (b,), device=x0.device)
            p_t = x0.new_full((b,), 1.0 / T)
        noise = torch.randn_like(x0)
        xt = q_sample(self.schedule, x0, t, noise)
        out = self.unet(xt, t)
        eps, v = split_output(out, self.variance, xt)
        simple = simple_loss(eps, noise)
        if loss == "hybrid":  # the bound's term with the mean stopped: it trains v alone (eq. 16)
            frozen = eps.detach() if v is None else torch.cat([eps.detach(), v], 1)
            term = step_terms(self.schedule, lambda _x, _t: frozen, x0, t, noise, self.variance)
        elif loss == "vlb":
            term = step_terms(self.schedule, lambda _x, _t: out, x0, t, noise, self.variance)
        else:
            with torch.no_grad():
                term = step_terms(self.schedule, lambda _x, _t: out.detach(), x0, t, noise, self.variance)
        prior = prior_kl(self.schedule, x0)
        vlb = vlb_estimate(term, prior, p_t)
        if loss == "simple":
            value = simple
        elif loss == "hybrid":
            value = hybrid_loss(simple, vlb, dims, vlb_weight)
        else:
            value = vlb / dims
        if timestep_sampling == "importance":
            self.importance.update(t, term)
        with torch.no_grad():  # the same forward pass scored as one step of the bound
            first = t == 0
            scaled = (term / p_t).detach()
            distortion = torch.where(first, scaled, torch.zeros_like(scaled))
            rate = prior + torch.where(first, torch.zeros_like(scaled), scaled)
        return value.mean(), ELBO(-(distortion + rate), distortion, rate, {"L_simple": simple.detach()})

    # -- sampling --------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, *, progress: bool | None = None) -> Tensor:
        """Ancestral sampling (Ho et al. Algorithm 2) from x_T down to x_1 (pixel model: the decoder makes
        x_0) or to x_0 (a latent prior; the last step takes the mean)."""
        return ddpm_sample(self.unet, self.schedule, (n, *self.latent_shape), variance=self.variance,
                           clip_x0=self.clip_sample, generator=generator, device=self._anchor.device,
                           dtype=self._anchor.dtype, progress=progress, stop=1 if self.pixel else 0)


# ------------------------------------------------------------------------------------------ encoder

@dataclass
class NoisingPosterior:
    """q(x_1|x_0) = N(sqrt(alpha_bar_1) x_0, (1 - alpha_bar_1) I), holding x_0 for the prior's bound."""

    x0: Tensor
    schedule: NoiseSchedule
    fixed = True  # a fixed (parameter-free) encoder: no active units / MI to report

    @property
    def _coefs(self) -> tuple[float, float]:
        ab = float(self.schedule.alphas_cumprod[0])
        return math.sqrt(ab), math.sqrt(1.0 - ab)

    @property
    def mean(self) -> Tensor:
        return self._coefs[0] * self.x0

    @property
    def stddev(self) -> Tensor:
        return torch.full_like(self.x0, self._coefs[1])

    def rsample(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        a, s = self._coefs
        shape = self.x0.shape if n is None else (n, *self.x0.shape)
        return a * self.x0 + s * torch.randn(shape, device=self.x0.device, dtype=self.x0.dtype, generator=generator)

    sample = rsample

    def log_prob(self, z: Tensor) -> Tensor:
        a, s = self._coefs
        lp = -0.5 * LOG_2PI - math.log(s) - 0.5 * ((z - a * self.x0) / s) ** 2
        return sum_event(lp, self.x0.dim() - 1)

    def entropy(self) -> Tensor:
        d = self.x0[0].numel()
        return self.x0.new_full((self.x0.shape[0],), d * (0.5 * (LOG_2PI + 1.0) + math.log(self._coefs[1])))

    def detach(self) -> "NoisingPosterior":
        return NoisingPosterior(self.x0.detach(), self.schedule)

    @staticmethod
    def cat(parts: list["NoisingPosterior"]) -> "NoisingPosterior":
        return NoisingPosterior(torch.cat([p.x0 for p in parts]), parts[0].schedule)


class _Bound(BoundToPrior):
    """Borrows the model's ``ddpm`` prior (zoo_plugins.diffusion.binding)."""

    prior_type, prior_label = DDPMPrior, "ddpm"

    @property
    def ddpm(self) -> DDPMPrior:
        return self.bound_prior()


class NoisingEncoder(_Bound):
    """The fixed forward process: x_0 (data in [-1, 1]) -> q(x_1|x_0).  No parameters."""

    posterior_type = NoisingPosterior
    family = "diffusion"
    test_shapes = {"latent_shape": (1, 8, 8), "data_shape": (1, 8, 8)}
    zoo_test_components = {"prior": {"name": "ddpm", "unet": "digits-8x8", "timesteps": 20, "eval_timesteps": 4}, "decoder": {"name": "ddpm-decoder"}}

    def __init__(self, *, data_shape, latent_shape):
        super().__init__()
        if tuple(latent_shape) != tuple(data_shape):
            raise ShapeError(f"ddpm-noising: latent shape must equal the data shape {list(data_shape)}, "
                             f"got {list(latent_shape)}")

    def forward(self, x: Tensor) -> NoisingPosterior:
        return NoisingPosterior(x, self.ddpm.schedule)


# ------------------------------------------------------------------------------------------ decoder

class DiscretizedGaussian(SignedUnitLikelihood):
    """Ho et al.'s decoder (eq. 13): Gaussian integrated over the 8-bit bin of x in [-1, 1]; edge
    bins open.  Params: mean and log-scale."""

    name = "discretized-gaussian"
    params_per_dim = 2

    def log_prob_elementwise(self, params: Tensor, x: Tensor) -> Tensor:
        mean, log_scale = self.split(params)
        return discretized_gaussian_log_likelihood(x, mean, log_scale)

    def mean(self, params: Tensor) -> Tensor:
        return self.split(params)[0].clamp(-1, 1)

    def sample(self, params: Tensor, generator=None) -> Tensor:
        mean, log_scale = self.split(params)
        x = mean + log_scale.exp() * torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return torch.round((x.clamp(-1, 1) + 1) * 127.5) / 127.5 - 1


class DDPMDecoder(_Bound):
    """p(x_0|x_1): the reverse step at t = 1 of the prior's UNet, as a discretized Gaussian."""

    family = "diffusion"
    test_shapes = {"latent_shape": (1, 8, 8), "data_shape": (1, 8, 8)}
    zoo_test_components = {"prior": {"name": "ddpm", "unet": "digits-8x8", "timesteps": 20, "eval_timesteps": 4}, "encoder": {"name": "ddpm-noising"}}

    def __init__(self, *, data_shape, latent_shape):
        super().__init__()
        self.likelihood = DiscretizedGaussian()

    def forward(self, z: Tensor) -> Observation:
        ddpm = self.ddpm
        t = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
        p = p_mean_variance(ddpm.schedule, ddpm.unet(z, t), z, t, ddpm.variance, clip_x0=False)
        return self.likelihood(torch.cat([p.mean, 0.5 * p.log_variance], 1))


# ------------------------------------------------------------------------------------------ helper

@torch.no_grad()
def sample(model, n: int, *, steps: int | None = None, eta: float = 0.0, batch_size: int = 256,
           generator: torch.Generator | None = None, progress: bool | None = None) -> Tensor:
    """n images in [0, 1] from a model with a ``ddpm`` prior (pixel DDPM or latent diffusion).

    ``steps=None``: ancestral sampling with all T steps; ``steps=S``: DDIM (Song et al. 2021) with
    S <= T steps and noise ``eta`` (0 deterministic, 1 the DDPM posterior variance).  Batched by
    ``batch_size``; a progress bar on a terminal (``progress=True`` always, False never)."""
    prior = model.prior
    if not isinstance(prior, DDPMPrior):
        raise ValueError(f"model {model.name!r} has no ddpm prior")
    T = prior.num_timesteps
    if steps is not None:
        ddim_timesteps(T, steps)  # ValueError unless 1 <= steps <= T
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    was = model.training
    model.eval()
    out = []
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        if steps is None:
            z = prior.sample(m, generator=generator, progress=progress)
            out.append(model.to_images(model.decoder(z).mean))
            continue
        shape = (m, *prior.latent_shape)
        x = ddim_sample(prior.eps, prior.schedule, shape, num_steps=steps, eta=eta,
                        clip_x0=prior.clip_sample, generator=generator, device=prior._anchor.device,
                        dtype=prior._anchor.dtype,
                        progress=progress)
        out.append(model.to_images(x) if prior.pixel else model.to_images(model.decoder(x).mean))
    model.train(was)
    return torch.cat(out)


class DDIMSampler:
    """The ``ddim`` sampler (Song et al. 2021) for models with a ``ddpm`` prior: ``zoo sample RUN --steps 50
    --eta 0`` or ``model.sample(n, sampler="ddim", steps=50, eta=0.0)``."""

    options = {
        "steps": SamplerOption(int, 50, "DDIM steps S <= T (one UNet call each)"),
        "eta": SamplerOption(float, 0.0, "DDIM noise: 0 deterministic .. 1 the DDPM posterior variance"),
        "batch_size": SamplerOption(int, 256, "images per UNet batch"),
    }

    def __call__(self, model, n: int, *, generator=None, steps: int = 50, eta: float = 0.0,
                 batch_size: int = 256) -> Tensor:
        return sample(model, n, steps=steps, eta=eta, batch_size=batch_size, generator=generator)


DDIM = DDIMSampler()

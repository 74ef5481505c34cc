"""Variational diffusion model (Kingma, Salimans, Poole & Ho 2021, "Variational Diffusion Models"):
prior ``vdm``, encoder ``vdm-noising``, decoder ``vdm-decoder``.

Notation (VDM, section 3): gamma(t) = -log SNR(t) is a learned monotone function of t in [0, 1],

    alpha_t^2 = sigmoid(-gamma(t)),  sigma_t^2 = sigmoid(gamma(t))         (variance preserving)
    q(z_t | x) = N(alpha_t x, sigma_t^2 I),  SNR(t) = alpha_t^2 / sigma_t^2 = exp(-gamma(t))

and the bound on -log p(x) is the sum of three terms (VDM eq. 11):

    prior            L_prior = KL(q(z_1|x) || N(0, I))                                    (closed form)
    reconstruction   L_0     = -E_q(z_0|x) log p(x | z_0)                                  (the decoder)
    diffusion        L_inf   = -1/2 E_{eps, t~U(0,1)} [ SNR'(t) ||x - x_hat(z_t; t)||^2 ]   (VDM eq. 17)
                             =  1/2 E [ gamma'(t) exp(-gamma(t)) ||x - x_hat(z_t; t)||^2 ]
    or, with ``timesteps: T`` (the discrete-time model, VDM eq. 13, s = t - 1/T):
                     L_T     =  T/2 E_{eps, i~U{1..T}} [ (SNR(s) - SNR(t)) ||x - x_hat(z_t; t)||^2 ]

The zoo's triple in pixel space: encoder ``vdm-noising`` gives q(z_0|x) (no weights of its own: it
reads gamma_0 from the prior), the prior's ``infer`` returns rate = L_prior + L_diffusion computed
from x itself, and ``vdm-decoder`` p(x|z_0) is a categorical over the 256 8-bit levels, exactly in
the data's discrete space (see :class:`VDMDecoder`).  Under any other encoder (latent diffusion) the
same prior scores a continuous z with the Gaussian reconstruction term of VDM's continuous data,
p(z | z_0) = N(z; z_0 / alpha_0, sigma_0^2 / alpha_0^2), whose expectation is closed form, so the
model's rate is E_q log q(z|x) + L(z) >= KL(q(z|x) || p(z)): the ELBO stays a bound.

Denoiser x_hat (``parameterization``):
  ``categorical`` (pixel models only): a categorical over the data's used grey levels v_1..v_K
      (``levels``), x_hat = sum_k p_k v_k with
          logit_k = b_k(pixel) + <h(pixel), e_k> - (z_t - alpha_t v_k)^2 / (2 sigma_t^2),
      b the per-pixel log level frequencies (seeded from the first training batch), e_k learned level
      embeddings and h the network's per-pixel features.  With h = 0 this is the exact posterior mean
      E[x | z_t] of the independent per-pixel categorical model: at low noise it snaps z_t onto the
      levels by construction, and the network only learns what the pixels say about each other.
  ``eps`` / ``v`` / ``x``: the network predicts eps, v = alpha eps - sigma x (Salimans & Ho 2022) or x,
      turned into x_hat; the loss is the same bound in every case.
Time sampling: training draws one t per image on a low-discrepancy grid over the batch (VDM appendix:
t_i = (u + i/B) mod 1); evaluation draws ``eval_times`` K stratified t per image (one uniform t in
each of K equal strata), independently per image, so the per-image bounds are independent and their
standard error covers the time draw.  The schedule's end points gamma_0, gamma_1 are trained on the
bound; its shape (which the continuous bound does not depend on) is trained to minimise the variance
of the diffusion term (VDM section 5.2: the gradient of E[L^2] reaches the shape parameters).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.contracts import ClosedFormEntropy, SamplerOption, Term, has
from zoo.distributions import LOG_2PI, sum_event
from zoo.errors import ShapeError
from zoo.likelihoods import SignedUnitLikelihood

from .binding import BoundToPrior

__all__ = ["VDMPrior", "VDMNoisingEncoder", "VDMNoisingPosterior", "VDMDecoder", "LevelCategorical",
           "MonotoneSchedule", "digit_levels", "VDM_SAMPLER"]

PARAMETERIZATIONS = ("categorical", "eps", "v", "x")
BINS = 256  # 8-bit data: the decoder's levels v = 2 k / 255 - 1, k = 0..255


def digit_levels(levels: Any) -> list[int]:
    """The used 8-bit values: an int n means round(i * 255 / (n - 1)), i = 0..n-1 (n-level data scaled to
    8 bits, as ``zoo:digits`` is: 17 levels), or an explicit list of distinct 8-bit values."""
    if isinstance(levels, bool):
        raise ValueError(f"levels must be an integer >= 2 or a list of 8-bit values, got {levels!r}")
    if isinstance(levels, int):
        if not 2 <= levels <= BINS:
            raise ValueError(f"levels must lie in 2..{BINS}, got {levels}")
        return [round(i * 255 / (levels - 1)) for i in range(levels)]
    if isinstance(levels, (list, tuple)) and levels and all(isinstance(v, int) and not isinstance(v, bool)
                                                              for v in levels):
        vals = sorted(set(levels))
        if vals[0] < 0 or vals[-1] > 255 or len(vals) != len(levels) or len(vals) < 2:
            raise ValueError(f"levels: a list of at least 2 distinct 8-bit values 0..255, got {levels!r}")
        return vals
    raise ValueError(f"levels must be an integer >= 2 or a list of 8-bit values, got {levels!r}")


# ------------------------------------------------------------------------------------ schedule

class MonotoneSchedule(nn.Module):
    """gamma(t) = gamma_0 + (gamma_1 - gamma_0) * shape(t), shape(0) = 0, shape(1) = 1 (VDM appendix H):

        g(t) = l1(t) + l3(sigmoid(l2(l1(t)))),  every weight positive (softplus): g is increasing
        shape(t) = (g(t) - g(0)) / (g(1) - g(0))

    gamma_0 < gamma_1 are free parameters (learned end points; -gamma is the log-SNR, in nats)."""

    def __init__(self, gamma_0: float = -13.3, gamma_1: float = 5.0, hidden: int = 64):
        super().__init__()
        if not gamma_0 < gamma_1:
            raise ValueError(f"the schedule needs gamma_0 < gamma_1, got {gamma_0} and {gamma_1}")
        self.gamma_0 = nn.Parameter(torch.tensor(float(gamma_0)))
        self.log_range = nn.Parameter(torch.tensor(math.log(gamma_1 - gamma_0)))  # gamma_1 - gamma_0 > 0
        # raw weights through softplus; the init makes shape(t) close to t (a linear gamma)
        self.w1 = nn.Parameter(torch.tensor(math.log(math.e - 1)))
        self.b1 = nn.Parameter(torch.zeros(()))
        self.w2 = nn.Parameter(torch.randn(hidden) * 0.5 + 1.0)
        self.b2 = nn.Parameter(torch.randn(hidden) * 0.5 - 0.5)
        self.w3 = nn.Parameter(torch.full((hidden,), -5.0))

    @property
    def gamma_1(self) -> Tensor:
        return self.gamma_0 + self.log_range.exp()

    def _g(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """g(t) and dg/dt (analytic)."""
        a, w2, w3 = F.softplus(self.w1), F.softplus(self.w2), F.softplus(self.w3)
        h = a * t + self.b1
        s = torch.sigmoid(h[..., None] * w2 + self.b2)
        g = h + (s * w3).sum(-1)
        dg = a + (s * (1 - s) * w2 * w3).sum(-1) * a
        return g, dg

    def shape(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """shape(t) in [0, 1] and its derivative."""
        g, dg = self._g(t)
        g0, _ = self._g(torch.zeros((), dtype=t.dtype, device=t.device))
        g1, _ = self._g(torch.ones((), dtype=t.dtype, device=t.device))
        return (g - g0) / (g1 - g0), dg / (g1 - g0)

    def forward(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(gamma(t), gamma'(t), shape(t), shape'(t)); gamma in nats of -log SNR."""
        sh, dsh = self.shape(t)
        rng = self.log_range.exp()
        return self.gamma_0 + rng * sh, rng * dsh, sh, dsh


def _alpha_sigma(gamma: Tensor) -> tuple[Tensor, Tensor]:
    """alpha = sqrt(sigmoid(-gamma)), sigma = sqrt(sigmoid(gamma))."""
    return torch.sigmoid(-gamma).sqrt(), torch.sigmoid(gamma).sqrt()


# ------------------------------------------------------------------------------------ denoiser net

class ResMLP(nn.Module):
    """Residual MLP on the flattened z_t (plus optional Fourier features of z_t, VDM appendix C),
    conditioned on the log-SNR through a sinusoidal embedding added in every block."""

    def __init__(self, dim: int, out: int, hidden: int, blocks: int, fourier: Sequence[int], dropout: float):
        super().__init__()
        self.fourier = [int(n) for n in fourier]
        d_in = dim * (1 + 2 * len(self.fourier))
        self.register_buffer("freqs", torch.logspace(-2, 1, 16), persistent=False)
        self.embed = nn.Sequential(nn.Linear(32, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(d_in, hidden)
        self.blocks = nn.ModuleList()
        for _ in range(blocks):
            self.blocks.append(nn.ModuleDict({"norm": nn.LayerNorm(hidden), "fc1": nn.Linear(hidden, hidden),
                                              "emb": nn.Linear(hidden, hidden), "fc2": nn.Linear(hidden, hidden)}))
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, out)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z: Tensor, log_snr: Tensor) -> Tensor:
        x = z.flatten(1)
        feats = [x]
        for n in self.fourier:  # sin / cos of 2^n pi z: fine detail of z at low noise (VDM appendix C)
            feats += [torch.sin(x * (math.pi * 2 ** n)), torch.cos(x * (math.pi * 2 ** n))]
        args = log_snr[:, None].to(x.dtype) * self.freqs
        emb = self.embed(torch.cat([torch.sin(args), torch.cos(args)], 1))
        h = self.inp(torch.cat(feats, 1))
        for blk in self.blocks:
            u = F.silu(blk["fc1"](F.silu(blk["norm"](h))) + blk["emb"](emb))
            h = h + blk["fc2"](self.dropout(u))
        return self.out(F.silu(self.norm(h)))


# ------------------------------------------------------------------------------------ prior

class VDMPrior(nn.Module):
    """VDM's learned-schedule diffusion as a prior: the bound, ancestral sampling and a denoiser.

    Card arguments: ``parameterization`` categorical (pixel models, with ``levels`` and ``head_features``)
    | eps | v | x; ``hidden``, ``blocks``, ``dropout``, ``fourier`` (list of n for sin/cos(2^n pi z)) of the
    residual-MLP denoiser; ``gamma_0``, ``gamma_1`` the initial end points of -log SNR; ``schedule_hidden``;
    ``timesteps`` null (the continuous-time bound) or T (the discrete-time model, eq. 13);
    ``eval_times`` K time draws per image in the reported bound; ``sample_steps`` ancestral steps."""

    exact = False  # log_prob / the rate is a variational bound
    family = "diffusion"
    samplers = ("vdm",)
    # the parts of the bound infer() adds to the ELBO terms (diagnose prints them); pixel model: rate = the first two
    results = (Term("L_prior", "prior term L_prior = KL(q(z_1|x)||N(0,I))"),
               Term("L_diffusion", "diffusion term L_diffusion (VDM eq. 17; eq. 13 with timesteps)"),
               Term("L_0", "reconstruction term L_0 of z given z_0 (latent VDM, closed form)"))
    test_shapes = {"latent_shape": (1, 4, 4), "data_shape": (1, 4, 4)}
    test_args = {"parameterization": "eps", "hidden": 32, "blocks": 1, "eval_times": 2, "sample_steps": 8}

    def __init__(self, *, latent_shape, data_shape=None, parameterization: str = "eps", levels: Any = 256,
                 head_features: int = 4, hidden: int = 192, blocks: int = 2, dropout: float = 0.0,
                 fourier: Sequence[int] = (), gamma_0: float = -13.3, gamma_1: float = 5.0,
                 schedule_hidden: int = 64, timesteps: int | None = None, eval_times: int = 8,
                 sample_steps: int = 256):
        super().__init__()
        self.latent_shape = tuple(int(v) for v in latent_shape)
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization must be one of {', '.join(PARAMETERIZATIONS)}, got {parameterization!r}")
        self.parameterization = parameterization
        for name, v, lo in (("hidden", hidden, 1), ("blocks", blocks, 0), ("eval_times", eval_times, 1),
                            ("sample_steps", sample_steps, 1), ("head_features", head_features, 1),
                            ("schedule_hidden", schedule_hidden, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if timesteps is not None and (isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1):
            raise ValueError(f"timesteps must be null (continuous time) or an integer >= 1, got {timesteps!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        self.timesteps, self.eval_times, self.sample_steps = timesteps, eval_times, sample_steps
        self.schedule = MonotoneSchedule(gamma_0, gamma_1, schedule_hidden)
        self.dim = int(torch.Size(self.latent_shape).numel())
        if parameterization == "categorical":
            values = torch.tensor(digit_levels(levels), dtype=torch.float32) / 127.5 - 1.0
            k = len(values)
            self.register_buffer("levels", values)                     # v_k in [-1, 1]
            self.level_logits = nn.Parameter(torch.zeros(k, *self.latent_shape))  # b_k(pixel)
            self.level_embed = nn.Parameter(torch.randn(k, head_features) / math.sqrt(head_features))
            self.register_buffer("seeded", torch.zeros(()))           # 1 once b is seeded from data
            self.head_features = head_features
            out = self.dim * head_features
        else:
            out = self.dim
        self.net = ResMLP(self.dim, out, hidden, blocks, fourier, float(dropout))
        self.pixel = False  # set by bind(): True under the vdm-noising encoder
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    # -- wiring ----------------------------------------------------------------------------------
    def bind(self, model) -> None:
        self.pixel = isinstance(model.encoder, VDMNoisingEncoder)
        if self.pixel and tuple(model.data_shape) != self.latent_shape:
            raise ShapeError(f"a pixel-space VDM needs latent shape = data shape, got latent {list(self.latent_shape)} "
                             f"and data {list(model.data_shape)}")
        if self.parameterization == "categorical" and not self.pixel:
            raise ValueError("vdm: parameterization 'categorical' (a categorical over the data's grey levels) needs "
                             "the pixel-space encoder vdm-noising; a latent diffusion prior predicts eps, v or x")

    @property
    def estimator(self) -> str:
        how = (f"continuous-time bound (VDM eq. 17), {self.eval_times} stratified t per image"
               if self.timesteps is None else
               f"discrete-time bound with T={self.timesteps} (VDM eq. 13), {self.eval_times} stratified steps per image")
        if self.pixel:
            return (f"VDM (Kingma et al. 2021): rate = KL(q(z_1|x)||N(0,I)) + diffusion term, {how}; distortion = "
                    f"-log p(x|z_0), a categorical over the 256 8-bit levels (exact); learned schedule")
        return (f"latent VDM: rate = E_q log q(z|x) + L(z), an upper bound on KL(q(z|x)||p(z)); L(z) = prior term + "
                f"diffusion term ({how}) + Gaussian reconstruction term of z given z_0 (closed form)")

    def gamma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """gamma(t) = -log SNR(t) and gamma'(t)."""
        g, dg, _, _ = self.schedule(t)
        return g, dg

    def log_snr_range(self) -> tuple[float, float]:
        """(-gamma_1, -gamma_0): the log-SNR range the denoiser was trained on (zoo.contracts.Denoiser)."""
        return float(-self.schedule.gamma_1), float(-self.schedule.gamma_0)

    def forward_marginals(self, steps: int = 1000) -> tuple[Tensor, Tensor]:
        """(alpha_t, sigma_t) at t = i/steps, i = 1..steps (zoo.contracts.GaussianForwardProcess)."""
        with torch.no_grad():
            t = torch.arange(1, steps + 1, dtype=torch.float64) / steps
            g = self._gamma64(t)
            a, s = _alpha_sigma(g)
        return a, s

    def _gamma64(self, t: Tensor) -> Tensor:
        """gamma(t) in float64 (the forward-process curve)."""
        sched = self.schedule
        rng = sched.log_range.double().exp()
        a, w2, w3 = F.softplus(sched.w1.double()), F.softplus(sched.w2.double()), F.softplus(sched.w3.double())

        def g(u):
            h = a * u + sched.b1.double()
            return h + (torch.sigmoid(h[..., None] * w2 + sched.b2.double()) * w3).sum(-1)
        g0, g1 = g(torch.zeros((), dtype=torch.float64)), g(torch.ones((), dtype=torch.float64))
        return sched.gamma_0.double() + rng * (g(t) - g0) / (g1 - g0)

    # -- the denoiser ----------------------------------------------------------------------------
    def _level_prior_logits(self, z: Tensor, gamma: Tensor) -> Tensor:
        """b_k + <h, e_k>: the categorical head's logits before the likelihood of z, ``[B, K, *shape]``."""
        h = self.net(z, -gamma).view(z.shape[0], self.head_features, *self.latent_shape)
        return self.level_logits.unsqueeze(0) + torch.einsum("bf...,kf->bk...", h, self.level_embed)

    def denoise(self, z: Tensor, log_snr: Tensor) -> Tensor:
        """x_hat = E_model[x | z] for z = alpha x + sigma eps, alpha^2 = sigmoid(log_snr), sigma^2 = sigmoid(-log_snr);
        ``log_snr`` ``[B]`` (zoo.contracts.Denoiser)."""
        gamma = -log_snr.to(z.dtype)
        b = z.shape[0]
        view = (b,) + (1,) * len(self.latent_shape)
        alpha, sigma = (v.view(view) for v in _alpha_sigma(gamma))
        if self.parameterization == "categorical":
            v = self.levels.view(1, -1, *([1] * len(self.latent_shape)))
            # logit_k = b_k + <h, e_k> - (z - alpha v_k)^2 / (2 sigma^2)   (posterior over levels given z)
            lik = -(z.unsqueeze(1) - alpha.unsqueeze(1) * v) ** 2 / (2 * sigma.unsqueeze(1) ** 2)
            p = torch.softmax(self._level_prior_logits(z, gamma) + lik, 1)
            return (p * v).sum(1)
        out = self.net(z, -gamma).view(z.shape)
        if self.parameterization == "eps":   # x = (z - sigma eps) / alpha
            return (z - sigma * out) / alpha
        if self.parameterization == "v":     # v = alpha eps - sigma x  =>  x = alpha z - sigma v
            return alpha * z - sigma * out
        return out

    # -- the bound -------------------------------------------------------------------------------
    def _times(self, b: int, k: int, device) -> Tensor:
        """Training: one t per image on a low-discrepancy grid over the batch; evaluation: k stratified t per
        image, independent across images.  ``[B, k]`` in (0, 1)."""
        if self.training:
            u = torch.rand((), device=device)
            return ((u + torch.arange(b, device=device) / b) % 1.0)[:, None]
        u = torch.rand(b, k, device=device)
        return (torch.arange(k, device=device) + u) / k

    def _diffusion(self, x: Tensor, k: int) -> Tensor:
        """The diffusion term per image (nats): continuous (eq. 17) or discrete-T (eq. 13), averaged over
        k time draws per image."""
        b = x.shape[0]
        t = self._times(b, k, x.device)                       # [B, k]
        T = self.timesteps
        if T is not None:  # t on the grid i/T, i = 1..T (stratified over the steps)
            t = torch.ceil(t * T).clamp(1, T) / T
        kk = t.shape[1]
        tf = t.reshape(-1)
        g_t, dg_t, sh, dsh = self.schedule(tf)
        hooks = self.training and torch.is_grad_enabled()
        if hooks:  # the shape parameters get the gradient of E[L^2] (variance), the end points of E[L]
            scale_holder: list[Tensor] = []
            sh.register_hook(lambda g: g * scale_holder[0])
            dsh.register_hook(lambda g: g * scale_holder[0])
        xs = x.unsqueeze(1).expand(b, kk, *x.shape[1:]).reshape(b * kk, *x.shape[1:])
        view = (b * kk,) + (1,) * (x.dim() - 1)
        alpha, sigma = (v.view(view) for v in _alpha_sigma(g_t))
        eps = torch.randn_like(xs)
        z_t = alpha * xs + sigma * eps
        x_hat = self.denoise(z_t, -g_t)
        err = (xs - x_hat).pow(2).flatten(1).sum(1)          # ||x - x_hat||^2
        if T is None:
            # L_inf = 1/2 gamma'(t) exp(-gamma(t)) ||x - x_hat||^2      (VDM eq. 17, one t)
            term = 0.5 * dg_t * torch.exp(-g_t) * err
        else:
            # L_T = T/2 (SNR(s) - SNR(t)) ||x - x_hat||^2,  s = t - 1/T    (VDM eq. 13, one step)
            g_s, _, _, _ = self.schedule(tf - 1.0 / T)
            term = 0.5 * T * torch.expm1(g_t - g_s) * torch.exp(-g_t) * err
        if hooks:
            # d E[L^2] / d eta = E[2 L dL/d eta]: scale the gradient reaching shape(t) by 2 L / 1 (per draw);
            # divided by the batch mean of L so the step size does not depend on the loss's units
            lt = term.detach()
            scale_holder.append((2 * lt / lt.mean().clamp(min=1e-8)))
        return term.view(b, kk).mean(1)

    def _prior_term(self, x: Tensor) -> Tensor:
        """KL(q(z_1|x) || N(0, I)) = 1/2 sum (alpha_1^2 x^2 + sigma_1^2 - 1 - log sigma_1^2), nats."""
        g1 = self.schedule.gamma_1
        a2, s2 = torch.sigmoid(-g1), torch.sigmoid(g1)
        return 0.5 * (a2 * x.pow(2) + s2 - 1.0 - F.logsigmoid(g1)).flatten(1).sum(1)

    def _gaussian_reconstruction(self, b: int, like: Tensor) -> Tensor:
        """E_q(z_0|z) -log N(z; z_0/alpha_0, sigma_0^2/alpha_0^2) = d/2 (log(2 pi sigma_0^2/alpha_0^2) + 1),
        closed form (z_0/alpha_0 - z = sigma_0/alpha_0 eps); = d/2 (log 2 pi + 1 + gamma_0)."""
        g0 = self.schedule.gamma_0
        return (0.5 * self.dim * (LOG_2PI + 1.0 + g0)).expand(b).to(like.dtype)

    def bound(self, x: Tensor, k: int | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Prior + diffusion terms for x ``[B, *latent_shape]`` (nats, ``[B]``) and the parts."""
        k = self.eval_times if k is None else k
        prior, diff = self._prior_term(x), self._diffusion(x, k)
        return prior + diff, {"L_prior": prior.detach(), "L_diffusion": diff.detach()}

    def seed_levels(self, x: Tensor) -> None:
        """Set b_k(pixel) = log of the per-pixel level frequencies of ``x`` (add-one-half smoothing)."""
        idx = (x.unsqueeze(1) - self.levels.view(1, -1, *([1] * len(self.latent_shape)))).abs().argmin(1)
        counts = F.one_hot(idx, len(self.levels)).movedim(-1, 1).sum(0).to(self.level_logits.dtype)
        with torch.no_grad():
            self.level_logits.copy_(torch.log((counts + 0.5) / (x.shape[0] + 0.5 * len(self.levels))))
            self.seeded.fill_(1.0)

    def infer(self, q) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(z, rate, extras).  Under vdm-noising: z = z_0 ~ q(z_0|x), rate = L_prior + L_diffusion of x; under any
        other encoder: z ~ q(z|x), rate = E_q log q(z|x) + L(z) (an upper bound on the KL)."""
        if isinstance(q, VDMNoisingPosterior):
            if self.parameterization == "categorical" and self.training and not bool(self.seeded):
                self.seed_levels(q.x0)  # data-dependent initialisation, once, from the first training batch
            rate, extras = self.bound(q.x0)
            return q.rsample(), rate, extras
        z = q.rsample()
        bound, extras = self.bound(z)
        recon = self._gaussian_reconstruction(z.shape[0], bound)
        extras["L_0"] = recon.detach()
        log_q = -q.entropy() if has(q, ClosedFormEntropy) else q.log_prob(z)
        return z, log_q + bound + recon, extras

    def log_prob(self, z: Tensor) -> Tensor:
        """-L(z) <= log p(z): the VDM bound on a continuous variable (stochastic; any leading dims)."""
        lead = z.shape[: z.dim() - len(self.latent_shape)]
        flat = z.reshape(-1, *self.latent_shape)
        bound, _ = self.bound(flat)
        return -(bound + self._gaussian_reconstruction(flat.shape[0], bound)).reshape(lead)

    # -- sampling --------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, *, steps: int | None = None) -> Tensor:
        """Ancestral sampling with ``steps`` (default ``sample_steps``; the discrete model's T when set) equal
        steps in t from z_1 ~ N(0, I): z_s ~ p(z_s|z_t) = q(z_s | z_t, x = x_hat(z_t; t)) (VDM eq. 5 / appendix A).
        Pixel model: returns z_0 (the decoder makes x); latent prior: z_0 / alpha_0, the mean of p(z|z_0)."""
        steps = steps or self.timesteps or self.sample_steps
        dev, dt = self._anchor.device, self._anchor.dtype
        z = torch.randn((n, *self.latent_shape), generator=generator, device=dev, dtype=dt)
        view = (n,) + (1,) * len(self.latent_shape)
        for i in range(steps, 0, -1):
            t = torch.full((n,), i / steps, device=dev, dtype=dt)
            g_t, _ = self.gamma(t)
            g_s, _ = self.gamma(t - 1.0 / steps)
            x_hat = self.denoise(z, -g_t).clamp(-1, 1) if self.pixel else self.denoise(z, -g_t)
            a_t, s_t = (v.view(view) for v in _alpha_sigma(g_t))
            a_s, s_s = (v.view(view) for v in _alpha_sigma(g_s))
            c = (-torch.expm1(g_s - g_t)).view(view)            # 1 - SNR(t)/SNR(s) = sigma_{t|s}^2 / sigma_t^2
            eps_hat = (z - a_t * x_hat) / s_t
            mean = a_s / a_t * (z - c * s_t * eps_hat)
            noise = torch.randn(z.shape, generator=generator, device=dev, dtype=dt)
            z = mean + s_s * c.sqrt() * noise
        if self.pixel:
            return z
        g0 = self.schedule.gamma_0
        return z / torch.sigmoid(-g0).sqrt()


# ------------------------------------------------------------------------------------------ encoder

@dataclass
class VDMNoisingPosterior:
    """q(z_0|x) = N(alpha_0 x, sigma_0^2 I), holding x for the prior's bound (alpha_0 from the learned gamma_0)."""

    x0: Tensor
    gamma_0: Tensor
    fixed = True  # no encoder network: no active units / MI to report

    def _coefs(self) -> tuple[Tensor, Tensor]:
        return _alpha_sigma(self.gamma_0)

    @property
    def mean(self) -> Tensor:
        return self._coefs()[0] * self.x0

    @property
    def stddev(self) -> Tensor:
        return self._coefs()[1].expand_as(self.x0)

    def rsample(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        a, s = self._coefs()
        shape = self.x0.shape if n is None else (n, *self.x0.shape)
        return a * self.x0 + s * torch.randn(shape, device=self.x0.device, dtype=self.x0.dtype, generator=generator)

    sample = rsample

    def log_prob(self, z: Tensor) -> Tensor:
        a, s = self._coefs()
        lp = -0.5 * LOG_2PI - torch.log(s) - 0.5 * ((z - a * self.x0) / s) ** 2
        return sum_event(lp, self.x0.dim() - 1)

    def entropy(self) -> Tensor:
        d = self.x0[0].numel()
        s = self._coefs()[1]
        return (d * (0.5 * (LOG_2PI + 1.0) + torch.log(s))).expand(self.x0.shape[0])

    def detach(self) -> "VDMNoisingPosterior":
        return VDMNoisingPosterior(self.x0.detach(), self.gamma_0.detach())

    @staticmethod
    def cat(parts: list["VDMNoisingPosterior"]) -> "VDMNoisingPosterior":
        return VDMNoisingPosterior(torch.cat([p.x0 for p in parts]), parts[0].gamma_0)


class _Bound(BoundToPrior):
    """Borrows the model's ``vdm`` prior (zoo_plugins.diffusion.binding)."""

    prior_type, prior_label = VDMPrior, "vdm"

    @property
    def vdm(self) -> VDMPrior:
        return self.bound_prior()


_TEST_PRIOR = {"name": "vdm", "parameterization": "categorical", "levels": 17, "hidden": 32, "blocks": 1,
               "eval_times": 2, "sample_steps": 8}


class VDMNoisingEncoder(_Bound):
    """x (8-bit data in [-1, 1]) -> q(z_0|x), with gamma_0 of the prior's schedule.  No parameters."""

    posterior_type = VDMNoisingPosterior
    family = "diffusion"
    test_shapes = {"latent_shape": (1, 4, 4), "data_shape": (1, 4, 4)}
    zoo_test_components = {"prior": _TEST_PRIOR, "decoder": {"name": "vdm-decoder"}}

    def __init__(self, *, data_shape, latent_shape):
        super().__init__()
        if tuple(latent_shape) != tuple(data_shape):
            raise ShapeError(f"vdm-noising: latent shape must equal the data shape {list(data_shape)}, "
                             f"got {list(latent_shape)}")

    def forward(self, x: Tensor) -> VDMNoisingPosterior:
        return VDMNoisingPosterior(x, self.vdm.schedule.gamma_0)


# ------------------------------------------------------------------------------------------ decoder

class LevelCategorical:
    """p(x | z_0) over the 256 8-bit levels v_j = 2 j / 255 - 1 (an Observation), from logits ``[B, 256, ...]``."""

    def __init__(self, logits: Tensor):
        self.log_p = torch.log_softmax(logits, 1)

    @staticmethod
    def index(x: Tensor) -> Tensor:
        return torch.round((x.clamp(-1, 1) + 1) * 127.5).long()

    def log_prob(self, x: Tensor) -> Tensor:
        lp = self.log_p.gather(1, self.index(x).unsqueeze(1)).squeeze(1)
        return lp.flatten(1).sum(1)

    @property
    def values(self) -> Tensor:
        return torch.arange(BINS, device=self.log_p.device, dtype=self.log_p.dtype) / 127.5 - 1.0

    @property
    def mean(self) -> Tensor:
        v = self.values.view(1, -1, *([1] * (self.log_p.dim() - 2)))
        return (self.log_p.exp() * v).sum(1)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        p = self.log_p.exp().movedim(1, -1)
        idx = torch.multinomial(p.reshape(-1, BINS), 1, generator=generator).view(p.shape[:-1])
        return self.values[idx]


class VDMLikelihood(SignedUnitLikelihood):
    name = "vdm-categorical"
    discrete = True


class VDMDecoder(_Bound):
    """p(x | z_0) proportional to pi(v) N(z_0; alpha_0 v, sigma_0^2) over the 256 8-bit levels v, per pixel: the
    exact posterior over the levels under a prior pi.  pi = (1 - 1e-3) * (the categorical head's distribution over
    the used levels at gamma_0) + 1e-3 * uniform over all 256 (every level keeps mass); with another
    parameterization pi is uniform (VDM's own decoder).  No weights of its own."""

    family = "diffusion"
    test_shapes = {"latent_shape": (1, 4, 4), "data_shape": (1, 4, 4)}
    zoo_test_components = {"prior": _TEST_PRIOR, "encoder": {"name": "vdm-noising"}}
    FLOOR = 1e-3

    def __init__(self, *, data_shape, latent_shape):
        super().__init__()
        self.likelihood = VDMLikelihood()

    def forward(self, z: Tensor) -> LevelCategorical:
        vdm = self.vdm
        b = z.shape[0]
        g0 = vdm.schedule.gamma_0
        alpha, sigma = _alpha_sigma(g0)
        extra = [1] * (z.dim() - 1)
        v = torch.arange(BINS, device=z.device, dtype=z.dtype).view(1, -1, *extra) / 127.5 - 1.0
        # log N(z_0; alpha_0 v, sigma_0^2) up to a constant in v
        logits = -(z.unsqueeze(1) - alpha * v) ** 2 / (2 * sigma ** 2)
        if vdm.parameterization == "categorical":
            head = torch.log_softmax(vdm._level_prior_logits(z, g0.expand(b)), 1)     # [B, K, ...]
            log_pi = torch.full_like(logits, math.log(self.FLOOR / BINS))
            idx = torch.round((vdm.levels + 1) * 127.5).long()
            used = torch.logaddexp(head + math.log1p(-self.FLOOR), log_pi[:, idx])
            log_pi = log_pi.index_copy(1, idx, used)
            logits = logits + log_pi
        return LevelCategorical(logits)


# ------------------------------------------------------------------------------------------ sampler

class VDMSampler:
    """The ``vdm`` sampler: ancestral sampling with a chosen number of steps (``zoo sample RUN --steps 100``)."""

    options = {
        "steps": SamplerOption(int, 256, "ancestral steps in t (one denoiser call each)"),
        "batch_size": SamplerOption(int, 256, "images per batch"),
    }

    @torch.no_grad()
    def __call__(self, model, n: int, *, generator=None, steps: int = 256, batch_size: int = 256) -> Tensor:
        prior = model.prior
        if not isinstance(prior, VDMPrior):
            raise ValueError(f"model {model.name!r} has no vdm prior")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        was = model.training
        model.eval()
        out = []
        for start in range(0, n, batch_size):
            z = prior.sample(min(batch_size, n - start), generator=generator, steps=steps)
            out.append(model.to_images(model.decoder(z).mean))
        model.train(was)
        return torch.cat(out)


VDM_SAMPLER = VDMSampler()

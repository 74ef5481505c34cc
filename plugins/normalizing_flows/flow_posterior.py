"""Normalising-flow posteriors: q(z|x) = a flow of a diagonal Gaussian, under any prior.

    z_0 ~ q_0(z_0|x) = N(mu(x), sigma(x)^2),   z = f_T o ... o f_1 (z_0)
    log q(z|x) = log q_0(z_0|x) - sum_t log |det df_t / dz_{t-1}|       (Rezende & Mohamed 2015, eq. 7)

The encoder ``flow`` wraps any registered encoder whose posterior is a diagonal Gaussian (the
base q_0) and adds the flow, with parameters amortised from x through a small context network
(an MLP of the flattened input, ``context: [widths]``):

    encoder: {name: flow, base: {name: mlp, hidden: [256]}, flow: planar, steps: 8, context: [128]}
    encoder: {name: flow, base: {name: conv, channels: [32, 64]}, flow: iaf, steps: 2, hidden: [64, 64]}

``flow: planar | radial`` (Rezende & Mohamed 2015): K cheap steps, parameters (u, w, b) /
(z0, alpha, beta) per data point from a linear map of the context.  ``flow: iaf`` (Kingma et al.
2016): T MADE steps taking the context h(x) as an extra input, orders reversed between steps.

What the core gets (zoo.contracts):
  * ``rsample`` / ``log_prob``: log q of the posterior's own samples is exact (the log-dets are
    accumulated on the way, kept for the z last returned); that is all the ELBO, the IWAE bound
    and H[q(z|x)] need.
  * no ``entropy``: the rate is the one-sample estimate log q(z|x) - log p(z).
  * ``mean``: E_q[z] has no closed form; a 100-sample Monte Carlo average with the *same* base
    noise for every x (common random numbers), so a unit whose q does not depend on x reads
    exactly inactive.
  * planar / radial: ``log_prob`` of any other z is refused (there is no closed-form inverse), and
    there is no ``cross_log_prob``: diagnose reports I_q and the marginal KL as not available,
    with this reason.
  * IAF: ``log_prob`` of any z and ``cross_log_prob`` invert the flow given each x_n's context
    (D MADE passes per step), so the ELBO-surgery split is exact as for a Gaussian posterior.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from zoo import contracts as c
from zoo.distributions import DiagGaussian

from zoo_plugins.basic.layers import activation as act_layer
from zoo_plugins.basic.layers import mlp, numel

from .flow_steps import IAFStep, Planar, Radial
from .made import MADE, order_degrees

MEAN_SAMPLES = 100
KL_PER_DIM_NOTE = "not defined: a flow posterior does not factorise over latent dimensions"
MEAN_NOTE = (f"E_q[z] has no closed form: a {MEAN_SAMPLES}-sample Monte Carlo average, the same base noise "
             "for every x (common random numbers)")


class FlowPosterior:
    """q(z|x) = f_T o ... o f_1 (z_0), z_0 ~ ``base`` (flat [B, D]); planar / radial steps (no inverse)."""

    notes = {"mi": "not available: planar and radial flows have no closed-form inverse, so log q(z|x_n) at "
                   "other points' samples (the exact aggregate posterior q(z)) cannot be computed",
             "kl_per_dim": KL_PER_DIM_NOTE, "active_units": MEAN_NOTE}

    def __init__(self, base: DiagGaussian, steps: list, latent_shape: tuple[int, ...]):
        self.base, self.steps, self.latent_shape = base, list(steps), tuple(latent_shape)
        self._cache: tuple[Tensor, Tensor] | None = None

    @property
    def batch(self) -> int:
        return self.base.mean.shape[0]

    def push(self, z0: Tensor) -> tuple[Tensor, Tensor]:
        """z_T = f(z_0) and sum_t log |det df_t/dz_{t-1}|, for z_0 ``[..., B, D]``."""
        z, log_det = z0, z0.new_zeros(z0.shape[:-1])
        for step in self.steps:
            z, ld = step(z)
            log_det = log_det + ld
        return z, log_det

    def rsample(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """A reparameterised sample ``[B, *latent]`` (or ``[n, B, *latent]``); its log q is kept for ``log_prob``."""
        z0 = self.base.rsample(n, generator)
        z, log_det = self.push(z0)
        log_q = self.base.log_prob(z0) - log_det
        z = z.reshape(*z.shape[:-1], *self.latent_shape)
        self._cache = (z, log_q)
        return z

    sample = rsample

    def log_prob(self, z: Tensor) -> Tensor:
        """log q(z|x) = log q_0(z_0|x) - sum_t log|det|, nats, for the z this posterior last sampled."""
        if self._cache is not None and z is self._cache[0]:
            return self._cache[1]
        return self.log_prob_of(z)

    def log_prob_of(self, z: Tensor) -> Tensor:
        raise ValueError("log q(z|x) of a z this posterior did not just sample is not available for planar or "
                         "radial flows (no closed-form inverse); use the z returned by rsample(), or flow: iaf")

    @property
    def mean(self) -> Tensor:
        """E_q[z] by a Monte Carlo average with common random numbers (see the module docstring)."""
        mu = self.base.mean
        g = torch.Generator(device=mu.device).manual_seed(0)
        eps = torch.randn((MEAN_SAMPLES, 1, mu.shape[-1]), generator=g, device=mu.device, dtype=mu.dtype)
        z, _ = self.push(mu + self.base.stddev * eps)
        return z.mean(0).reshape(self.batch, *self.latent_shape)


class InvertibleFlowPosterior(FlowPosterior):
    """An IAF posterior: ``log_prob`` of any z and ``cross_log_prob`` (the exact aggregate posterior)."""

    notes = {"kl_per_dim": KL_PER_DIM_NOTE, "active_units": MEAN_NOTE}

    def pull(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z_0 = f^{-1}(z) and sum_t log|det df_t/dz_{t-1}| at the recovered points, z ``[..., B, D]``."""
        log_det = z.new_zeros(z.shape[:-1])
        for step in reversed(self.steps):
            z, ld = step.inverse(z)
            log_det = log_det + ld
        return z, log_det

    def log_prob_of(self, z: Tensor) -> Tensor:
        """log q(z|x) for any z ``[B, *latent]`` or ``[S, B, *latent]``, by inverting the flow."""
        flat = z.reshape(*z.shape[: z.dim() - len(self.latent_shape)], -1)
        z0, log_det = self.pull(flat)
        return self.base.log_prob(z0) - log_det

    def cross_log_prob(self, z: Tensor, chunk: int = 8192) -> Tensor:
        """log q(z_m | x_b) for every pair: z ``[M, *latent]`` -> ``[M, B]`` (inverts the flow per x_b)."""
        b = self.batch
        flat = z.reshape(z.shape[0], 1, -1)
        rows = max(1, chunk // b)
        return torch.cat([self.log_prob_of(zc.expand(len(zc), b, flat.shape[-1])) for zc in flat.split(rows)])

    @staticmethod
    def cat(parts: list["InvertibleFlowPosterior"]) -> "InvertibleFlowPosterior":
        steps = [type(s).cat([p.steps[t] for p in parts]) for t, s in enumerate(parts[0].steps)]
        return InvertibleFlowPosterior(DiagGaussian.cat([p.base for p in parts]), steps, parts[0].latent_shape)


FLOWS = ("planar", "radial", "iaf")


class FlowEncoder(nn.Module):
    """Any diagonal-Gaussian encoder (``base``) followed by ``steps`` planar / radial / IAF steps."""

    family = "vae"
    # the conformance kit: a small planar flow around a small mlp
    test_args = {"base": {"name": "mlp", "hidden": [16]}, "flow": "planar", "steps": 2, "context": [16],
                 "hidden": [16]}

    def __init__(self, *, data_shape, latent_shape, base: dict[str, Any] | None = None, flow: str = "planar",
                 steps: int = 4, context: list[int] = (128,), hidden: list[int] = (64, 64),
                 activation: str = "relu", forget_bias: float = 2.0):
        super().__init__()
        from zoo.registry import get_registry

        if flow not in FLOWS:
            raise ValueError(f"flow encoder: flow must be one of {', '.join(FLOWS)}, got {flow!r}")
        if int(steps) < 1:
            raise ValueError(f"flow encoder: steps must be >= 1, got {steps}")
        spec = dict(base or {"name": "mlp"})
        name = spec.pop("name", None)
        if not name:
            raise ValueError("flow encoder: 'base' needs a name (a registered encoder, e.g. {name: mlp})")
        self.base = get_registry().get("encoder", name).factory(data_shape=data_shape, latent_shape=latent_shape,
                                                                 **spec)
        self.flow, self.num_steps = flow, int(steps)
        self.latent_shape = tuple(latent_shape)
        self.dim = d = numel(latent_shape)
        context = [int(w) for w in context]
        self.context = nn.Sequential(nn.Flatten(), mlp([numel(data_shape), *context], activation), act_layer(activation))
        self.forget_bias = float(forget_bias)
        if flow == "iaf":
            deg = [order_degrees(torch.arange(d) if t % 2 == 0 else torch.arange(d).flip(0)) for t in range(steps)]
            self.mades = nn.ModuleList(MADE(g, torch.cat([g, g]), list(hidden), context=context[-1],
                                            activation=activation, zero_last=True) for g in deg)
            self.posterior_type = InvertibleFlowPosterior
        else:
            per_step = 2 * d + 1 if flow == "planar" else d + 2
            self.params = nn.Linear(context[-1], self.num_steps * per_step)
            with torch.no_grad():  # start near the identity: small per-sample parameters, w a fixed direction
                self.params.weight.mul_(0.01)
                bias = self.params.bias.view(self.num_steps, per_step)
                bias.zero_()
                if flow == "planar":
                    bias[:, d:2 * d].normal_(0, 1 / math.sqrt(d), generator=torch.Generator().manual_seed(0))
            self.posterior_type = FlowPosterior

    def bind(self, model) -> None:
        """Check the base's declared posterior type and pass the model on to a base that binds."""
        declared = c.posterior_type(self.base)
        if declared is not None and not issubclass(declared, DiagGaussian):
            raise ValueError(f"the flow encoder's base must give a diagonal Gaussian (DiagGaussian); its base "
                             f"{type(self.base).__name__} gives {declared.__name__}")
        if c.has(self.base, c.Binds):
            self.base.bind(model)

    def forward(self, x: Tensor) -> FlowPosterior:
        q0 = self.base(x)
        if not isinstance(q0, DiagGaussian):
            raise TypeError(f"the flow encoder's base must give a diagonal Gaussian (DiagGaussian), its base "
                            f"{type(self.base).__name__} gives {type(q0).__name__}")
        base = DiagGaussian(q0.mean.flatten(1), q0.log_scale.flatten(1))
        h = self.context(x)
        if self.flow == "iaf":
            steps = [IAFStep(made, h, self.forget_bias) for made in self.mades]
            return InvertibleFlowPosterior(base, steps, self.latent_shape)
        raw = self.params(h).view(h.shape[0], self.num_steps, -1)
        make = Planar.from_raw if self.flow == "planar" else Radial.from_raw
        return FlowPosterior(base, [make(raw[:, t], self.dim) for t in range(self.num_steps)], self.latent_shape)

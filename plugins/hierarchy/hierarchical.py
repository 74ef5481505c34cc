"""Hierarchical VAE with top-down inference (Ladder VAE, Sønderby et al. 2016; NVAE, Vahdat & Kautz 2020).

Latent layers z_1 (bottom, next to x) .. z_L (top), stored side by side in one flat latent
``z = [z_1, z_2, ..., z_L]`` of ``sum(layers)`` dimensions (``latent: {shape: [sum]}``):

    generative   p(z) = p(z_L) prod_{l<L} p(z_l | z_{l+1}),   p(z_L) = N(0, I),
                 p(z_l | z_{l+1}) = N(mu_l(z_{l+1}), sigma_l(z_{l+1})^2)   (prior ``ladder``)
                 p(x | z)  any decoder of the flat z (it sees every layer, as NVAE's does)
    inference    bottom-up: x -> d_1 -> d_2 ... with Gaussian "messages" (m_l, s_l) (encoder ``ladder``)
                 top-down:  q(z_l | z_{l+1}, x) combines the message with the prior's top-down
                 N(mu_l(z_{l+1}), sigma_l^2):  ``merge: residual`` (default, NVAE)
                 N(mu_l + m_l, (sigma_l e^{s_l})^2), or ``merge: precision`` (LVAE eq. 17-18) the
                 precision-weighted product of N(m_l, s_l^2) and the prior's conditional.
                 (On digits the residual form keeps both layers active; the precision form
                 collapses most units at 50 epochs.)

The rate is sum_l E_q KL(q(z_l|z_{l+1},x) || p(z_l|z_{l+1})), each term in closed form given the
sampled z_{l+1}; ``prior.infer`` returns it with the per-layer terms as ``extras["kl_per_layer"]``
([B, L], bottom layer first), declared in ``results`` (a zoo.contracts.Series), which ``zoo diagnose`` reports.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from zoo.contracts import PerDimLogProb, Series, has
from zoo.distributions import LOG_2PI, DiagGaussian, gaussian_kl

from zoo_plugins.basic.layers import activation as act_layer
from zoo_plugins.basic.layers import mlp, numel


def _layers(latent_shape, layers) -> list[int]:
    if len(tuple(latent_shape)) != 1:
        raise ValueError(f"the ladder latent is flat: latent shape must be [sum(layers)], got {list(latent_shape)}")
    d = int(latent_shape[0])
    if layers is None:  # default: two layers, the top one the smaller
        if d < 2:
            raise ValueError("a ladder needs at least 2 latent dimensions (one per layer)")
        layers = [d - d // 2, d // 2]
    layers = [int(v) for v in layers]
    if len(layers) < 2 or min(layers) < 1 or sum(layers) != d:
        raise ValueError(f"ladder layers {layers} must be >= 2 positive sizes summing to the latent size {d}")
    return layers


class LadderPrior(nn.Module):
    """p(z_L) = N(0, I), p(z_l | z_{l+1}) = N(mu_l, sigma_l^2) from an MLP of z_{l+1}."""

    exact = True
    family = "hierarchical-vae"
    results = (Series("kl_per_layer", "KL per layer", index="layer", items="layers", total="rate",
                      note="bottom layer first"),)

    def __init__(self, *, latent_shape, data_shape=None, layers: list[int] | None = None,
                 hidden: int = 64, activation: str = "elu", min_log_scale: float = -6.0):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        self.layers = _layers(latent_shape, layers)
        self.min_log_scale = min_log_scale
        # top_down[l] maps z_{l+1} to (mu_l, log sigma_l), l = 0 .. L-2
        self.top_down = nn.ModuleList(
            nn.Sequential(mlp([self.layers[l + 1], hidden], activation), act_layer(activation),
                          nn.Linear(hidden, 2 * self.layers[l]))
            for l in range(len(self.layers) - 1))
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def split(self, z: Tensor) -> list[Tensor]:
        return list(z.split(self.layers, dim=-1))

    def log_prob(self, z: Tensor) -> Tensor:
        """sum_l log p(z_l | z_{l+1}), nats; any leading dimensions."""
        return self.log_prob_per_layer(z).sum(-1)

    def log_prob_per_layer(self, z: Tensor) -> Tensor:
        """log p(z_l | z_{l+1}) for every layer, ``[..., L]`` (bottom first)."""
        parts = self.split(z)
        out = []
        for l in range(len(parts)):
            if l == len(parts) - 1:
                out.append((-0.5 * (parts[l] ** 2 + LOG_2PI)).sum(-1))
            else:
                mean, log_scale = self.top_down[l](parts[l + 1]).chunk(2, -1)
                out.append(DiagGaussian(mean, log_scale.clamp(min=self.min_log_scale)).log_prob_per_dim(parts[l]).sum(-1))
        return torch.stack(out, -1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Ancestral sampling from the top layer down."""
        kw = {"device": self._anchor.device, "dtype": self._anchor.dtype, "generator": generator}
        z = torch.randn((n, self.layers[-1]), **kw)
        parts = [z]
        for l in range(len(self.layers) - 2, -1, -1):
            mean, log_scale = self.top_down[l](parts[0]).chunk(2, -1)
            eps = torch.randn(mean.shape, **kw)
            parts.insert(0, mean + log_scale.clamp(min=self.min_log_scale).exp() * eps)
        return torch.cat(parts, -1)

    def infer(self, q) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """z ~ q and KL(q||p) = sum over layers; ``extras['kl_per_layer']`` is ``[B, L]``.

        With the ladder posterior each layer's KL is in closed form given the sampled upper
        layer; with any other posterior (e.g. a plain Gaussian encoder) it is the one-sample
        estimate log q(z_l|x) - log p(z_l|z_{l+1}) per layer."""
        if isinstance(q, LadderPosterior):
            z, qs, ps = q.top_down_pass()
            kls = torch.stack([gaussian_kl(qm, qs_, pm, ps_).sum(-1) for (qm, qs_), (pm, ps_) in zip(qs, ps)], -1)
            return z, kls.sum(-1), {"kl_per_layer": kls}
        z = q.rsample()
        log_p = self.log_prob_per_layer(z)
        if has(q, PerDimLogProb):
            log_q = torch.stack([t.sum(-1) for t in q.log_prob_per_dim(z).split(self.layers, -1)], -1)
            kls = log_q - log_p
            return z, kls.sum(-1), {"kl_per_layer": kls}
        return z, q.log_prob(z) - log_p.sum(-1), {}


@dataclass
class LadderPosterior:
    """q(z|x) = prod_l q(z_l | z_{l+1}, x): bottom-up messages merged with the prior's top-down pass."""

    messages: list[tuple[Tensor, Tensor]]  # (mean, log-scale) per layer, bottom first, [B, d_l]
    prior: LadderPrior
    merge: str = "residual"

    def top_down_pass(self, n: int | None = None, z: Tensor | None = None, use_mean: bool = False,
                      generator: torch.Generator | None = None):
        """Sample (or take from ``z``, or the means) layer by layer from the top.

        Returns the flat z and, per layer (bottom first), q's and p's (mean, log-scale)."""
        msgs = self.messages
        if n is not None:
            msgs = [(m.expand(n, *m.shape), s.expand(n, *s.shape)) for m, s in msgs]
        given = self.prior.split(z) if z is not None else None
        L = len(msgs)
        parts: list[Tensor | None] = [None] * L
        qs: list = [None] * L
        ps: list = [None] * L
        for l in range(L - 1, -1, -1):
            m, s = msgs[l]
            if l == L - 1:
                pm, ps_ = torch.zeros_like(m), torch.zeros_like(s)
            else:
                pm, ps_ = self.prior.top_down[l](parts[l + 1]).chunk(2, -1)
                ps_ = ps_.clamp(min=self.prior.min_log_scale)
            if self.merge == "precision":  # LVAE: the product of N(m, s^2) and N(pm, ps^2)
                prec_q, prec_p = (-2 * s).exp(), (-2 * ps_).exp()
                var = 1 / (prec_q + prec_p)
                mean = var * (m * prec_q + pm * prec_p)
                log_scale = 0.5 * var.log()
            else:                          # NVAE: a residual relative to the prior, N(pm + m, (ps * e^s)^2)
                mean, log_scale = pm + m, ps_ + s
            qs[l], ps[l] = (mean, log_scale), (pm, ps_)
            if given is not None:
                parts[l] = given[l]
            elif use_mean:
                parts[l] = mean
            else:
                eps = torch.randn(mean.shape, device=mean.device, dtype=mean.dtype, generator=generator)
                parts[l] = mean + log_scale.exp() * eps
        return torch.cat(parts, -1), qs, ps

    def rsample(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        return self.top_down_pass(n, generator=generator)[0]

    sample = rsample

    def log_prob(self, z: Tensor) -> Tensor:
        """log q(z|x) = sum_l log q(z_l | z_{l+1}, x) for z ``[B, D]`` or ``[S, B, D]``."""
        n = z.shape[0] if z.dim() == 3 else None
        _, qs, _ = self.top_down_pass(n, z=z)
        return sum(DiagGaussian(m, s).log_prob_per_dim(p).sum(-1)
                   for (m, s), p in zip(qs, self.prior.split(z)))

    def cross_log_prob(self, z: Tensor, chunk: int = 256) -> Tensor:
        """log q(z_m | x_b) for every pair: z ``[M, D]`` -> ``[M, B]`` (the aggregate posterior in diagnose)."""
        b, d = self.messages[0][0].shape[0], z.shape[-1]
        return torch.cat([self.log_prob(zc[:, None, :].expand(len(zc), b, d)) for zc in z.split(chunk)])

    @property
    def mean(self) -> Tensor:
        """z from the top-down pass with every layer at its posterior mean."""
        return self.top_down_pass(use_mean=True)[0]

    def detach(self) -> "LadderPosterior":
        return LadderPosterior([(m.detach(), s.detach()) for m, s in self.messages], self.prior, self.merge)

    @staticmethod
    def cat(parts: list["LadderPosterior"]) -> "LadderPosterior":
        msgs = [(torch.cat([p.messages[l][0] for p in parts]), torch.cat([p.messages[l][1] for p in parts]))
                for l in range(len(parts[0].messages))]
        return LadderPosterior(msgs, parts[0].prior, parts[0].merge)


class LadderEncoder(nn.Module):
    """Bottom-up MLP: x -> d_1 -> ... -> d_L, a Gaussian message (m_l, s_l) from each d_l.

    Returns a ``LadderPosterior`` that runs the top-down pass through the model's ``ladder`` prior."""

    posterior_type = LadderPosterior
    family = "hierarchical-vae"
    test_shapes = {"latent_shape": (4,)}
    zoo_test_components = {"prior": {"name": "ladder"}}

    def __init__(self, *, data_shape, latent_shape, layers: list[int] | None = None,
                 hidden: list[int] = (256, 128), activation: str = "elu", min_log_scale: float = -6.0,
                 merge: str = "residual"):
        super().__init__()
        if merge not in ("precision", "residual"):
            raise ValueError(f"ladder encoder: merge must be 'precision' (LVAE) or 'residual' (NVAE), got {merge!r}")
        self.merge = merge
        self.layers = _layers(latent_shape, layers)
        hidden = list(hidden)
        if len(hidden) != len(self.layers):
            hidden = (hidden + [hidden[-1]] * len(self.layers))[: len(self.layers)]
        self.min_log_scale = min_log_scale
        sizes = [numel(data_shape), *hidden]
        self.blocks = nn.ModuleList(
            nn.Sequential(*([nn.Flatten()] if i == 0 else []), nn.Linear(sizes[i], sizes[i + 1]), act_layer(activation))
            for i in range(len(self.layers)))
        self.heads = nn.ModuleList(nn.Linear(h, 2 * d) for h, d in zip(hidden, self.layers))
        self._model = None

    def bind(self, model) -> None:
        if not isinstance(model.prior, LadderPrior):
            raise ValueError(f"the ladder encoder needs the ladder prior (its top-down pass), got {type(model.prior).__name__}")
        if model.prior.layers != self.layers:
            raise ValueError(f"ladder encoder layers {self.layers} differ from the ladder prior's {model.prior.layers}")
        object.__setattr__(self, "_model", weakref.ref(model))

    def forward(self, x: Tensor) -> LadderPosterior:
        model = self._model() if self._model is not None else None
        if model is None:
            raise RuntimeError("the ladder encoder is not bound to a model: build it inside a LatentModel")
        messages = []
        h = x
        for block, head in zip(self.blocks, self.heads):
            h = block(h)
            m, s = head(h).chunk(2, -1)
            messages.append((m, s.clamp(min=self.min_log_scale)))
        return LadderPosterior(messages, model.prior, self.merge)

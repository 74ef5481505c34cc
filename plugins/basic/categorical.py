"""A categorical likelihood per pixel on the 8-bit space: a softmax over grey levels.

``levels: 256`` is one logit per 8-bit value (0..255).  ``levels: L`` (L < 256) is one logit per level of an
evenly spaced grid of L grey levels, v_k = round(k * 255 / (L - 1)) (``zoo:digits``: L = 17, the values its
images take), mixed with a uniform floor over all 256 values so that every 8-bit image keeps a positive mass:

    P(v) = (1 - floor) * softmax(logits)_k [v = v_k]  +  floor / 256                                  (nats: -log P)

Either way it is a probability mass function on the 256 values of an 8-bit pixel, so its bits/dim are on the
same space and scale as a discretized-logistic or the DDPM's discretized-Gaussian decoder.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from zoo.errors import CardError
from zoo.likelihoods import ElementwiseLikelihood


class Categorical(ElementwiseLikelihood):
    """Softmax over ``levels`` grey levels per pixel, on data in [0, 1] (8-bit values v / 255)."""

    name = "categorical"
    discrete = True

    def __init__(self, levels: int = 256, floor: float = 1e-4):
        if not (isinstance(levels, int) and not isinstance(levels, bool) and 2 <= levels <= 256):
            raise CardError(f"categorical likelihood: levels must be an integer in 2..256, got {levels!r}")
        if not (isinstance(floor, (int, float)) and 0 <= floor < 1):
            raise CardError(f"categorical likelihood: floor must be a number in [0, 1), got {floor!r}")
        if levels < 256 and floor == 0:
            raise CardError("categorical likelihood: levels < 256 needs floor > 0 (a mass for the other 8-bit values)")
        self.levels = levels
        self.floor = float(floor) if levels < 256 else 0.0
        self.params_per_dim = levels
        values = torch.round(torch.arange(levels, dtype=torch.float64) * 255.0 / (levels - 1)).long()
        self.values = values  # the 8-bit value of each level
        index = torch.full((256,), -1, dtype=torch.long)
        index[values] = torch.arange(levels)
        self.index = index  # 8-bit value -> level (-1: not a level)

    def _logits(self, params: Tensor) -> Tensor:
        """``[B, L*C, H, W]`` -> ``[B, C, H, W, L]`` (chunk k of the channels is level k, as ``split`` reads it)."""
        b, _, *rest = params.shape
        return params.reshape(b, self.levels, -1, *rest).movedim(1, -1)

    @staticmethod
    def _promoted(logits: Tensor) -> Tensor:
        """Half-precision logits in float32 for the softmax; float32 and float64 as they are."""
        return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()

    def log_prob_elementwise(self, params: Tensor, x: Tensor) -> Tensor:
        logp = torch.log_softmax(self._promoted(self._logits(params)), dim=-1)
        v = torch.round(x.float().clamp(0, 1) * 255).long()
        k = self.index.to(v.device)[v]
        on_grid = (k >= 0)
        picked = logp.gather(-1, k.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        if self.floor == 0:
            return picked
        log_floor = math.log(self.floor / 256)
        mixed = torch.logaddexp(picked + math.log1p(-self.floor), torch.full_like(picked, log_floor))
        return torch.where(on_grid, mixed, torch.full_like(picked, log_floor))

    def mean(self, params: Tensor) -> Tensor:
        p = torch.softmax(self._promoted(self._logits(params)), dim=-1)
        grid = self.values.to(p.device, p.dtype) / 255
        m = (p * grid).sum(-1)
        return (1 - self.floor) * m + self.floor * 0.5

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        p = torch.softmax(self._promoted(self._logits(params)), dim=-1)
        flat = p.reshape(-1, self.levels)
        k = torch.multinomial(flat, 1, generator=generator).reshape(p.shape[:-1])
        v = self.values.to(k.device)[k]
        if self.floor > 0:
            u = torch.rand(v.shape, generator=generator, device=v.device)
            other = torch.randint(0, 256, v.shape, generator=generator, device=v.device)
            v = torch.where(u < self.floor, other, v)
        return v.to(params.dtype) / 255

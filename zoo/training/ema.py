"""Exponential moving average of a model's weights (Polyak averaging, as DDPM training uses).

    ema <- decay * ema + (1 - decay) * weights        after every optimiser step

Floating-point parameters are averaged; buffers (and integer tensors) are copied.  The shadow
weights live on the model's device; ``state_dict()`` has the model's keys, so the EMA is saved
and loaded like any model (``model_ema.safetensors``, ``zoo.load(folder)``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.num_updates = 0
        state = model.state_dict()
        self.shadow: dict[str, Tensor] = {k: v.detach().clone() for k, v in state.items()}
        names = {n for n, _ in model.named_parameters()}
        self._avg = [k for k, v in state.items() if k in names and v.is_floating_point()]
        self._copy = [k for k in state if k not in set(self._avg)]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step from ``model``'s current weights (no host sync, one fused op)."""
        state = model.state_dict()
        shadow = [self.shadow[k] for k in self._avg]
        torch._foreach_lerp_(shadow, [state[k].detach() for k in self._avg], 1.0 - self.decay)
        for k in self._copy:
            self.shadow[k].copy_(state[k])
        self.num_updates += 1

    def state_dict(self) -> dict[str, Tensor]:
        return self.shadow

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        missing = set(self.shadow) ^ set(state)
        if missing:
            raise KeyError(f"EMA state does not fit the model: keys {sorted(missing)[:5]}")
        for k, v in state.items():
            self.shadow[k].copy_(v)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> nn.Module:
        """Load the averaged weights into ``model`` (e.g. a separate evaluation copy)."""
        model.load_state_dict(self.shadow, strict=True)
        return model

"""A component that borrows the model's diffusion prior: the pixel-space encoder and decoder of a diffusion model
have no weights of their own; they read the prior's schedule (and, for the decoder, its network) when bound."""
from __future__ import annotations

import weakref

from torch import nn


class BoundToPrior(nn.Module):
    """Keeps a weak reference to the model's prior of type ``prior_type`` (not a submodule: no duplicated
    weights).  Subclasses set ``prior_type`` and ``prior_label`` (the card's prior name)."""

    prior_type: type = nn.Module
    prior_label: str = ""

    def __init__(self) -> None:
        super().__init__()
        self._prior_ref = None

    def bind(self, model) -> None:
        if not isinstance(model.prior, self.prior_type):
            raise ValueError(f"{type(self).__name__} needs the '{self.prior_label}' prior, got "
                             f"{type(model.prior).__name__}")
        object.__setattr__(self, "_prior_ref", weakref.ref(model.prior))

    def bound_prior(self):
        prior = self._prior_ref() if self._prior_ref is not None else None
        if prior is None:
            raise RuntimeError(f"{type(self).__name__} is not bound to a model with a {self.prior_label} prior")
        return prior

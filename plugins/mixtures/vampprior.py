"""VampPrior (Tomczak & Welling 2018): the prior is the model's own encoder at K learned pseudo-inputs,

    p(z) = 1/K sum_k q(z | u_k),

the aggregate posterior of a small learned "data set" u_1..u_K.  Usable with any encoder whose
posterior offers ``cross_log_prob`` (the built-in diagonal-Gaussian heads do) and any decoder.
The pseudo-inputs live in the likelihood's data space (what ``model.prepare`` returns) and are
initialised there from uniform noise; they are the prior's only parameters.  The encoder is
reached through the model (a weak reference, set by ``bind``), so it is trained by both the
reconstruction and the prior term, as in the paper.
"""
from __future__ import annotations

import math
import weakref

import torch
from torch import Tensor, nn

from zoo.contracts import AggregatePosterior, has


class VampPrior(nn.Module):
    """p(z) = 1/K sum_k q(z|u_k), u_k learned pseudo-inputs of the data's shape."""

    exact = True

    def __init__(self, *, latent_shape, data_shape, components: int = 50):
        super().__init__()
        if data_shape is None:
            raise ValueError("the vampprior needs the data shape (its pseudo-inputs are images)")
        self.latent_shape = tuple(latent_shape)
        self.pseudo_inputs = nn.Parameter(torch.rand(components, *data_shape, generator=torch.Generator().manual_seed(0)))
        self._model = None

    def bind(self, model) -> None:
        object.__setattr__(self, "_model", weakref.ref(model))
        with torch.no_grad():  # uniform noise in [0, 1], mapped to the likelihood's data space
            self.pseudo_inputs.copy_(model.decoder.likelihood.prepare(self.pseudo_inputs.clamp(0, 1)))

    def _encoder(self):
        model = self._model() if self._model is not None else None
        if model is None:
            raise RuntimeError("the vampprior is not bound to a model: build it inside a LatentModel "
                               "(it evaluates the model's encoder at its pseudo-inputs)")
        return model.encoder

    def components(self):
        """q(z|u_k) for every pseudo-input: a posterior with batch size K."""
        return self._encoder()(self.pseudo_inputs)

    def log_prob(self, z: Tensor) -> Tensor:
        """log 1/K sum_k q(z|u_k), nats; any leading dimensions."""
        q = self.components()
        if not has(q, AggregatePosterior):
            raise TypeError(f"the vampprior needs an encoder whose posterior has cross_log_prob, got {type(q).__name__}")
        lead = z.shape[: z.dim() - len(self.latent_shape)]
        flat = z.reshape(-1, *self.latent_shape)
        out = torch.logsumexp(q.cross_log_prob(flat), dim=1) - math.log(self.pseudo_inputs.shape[0])
        return out.reshape(lead)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Pick a pseudo-input uniformly, then z ~ q(z|u_k)."""
        q = self.components()
        k = torch.randint(0, self.pseudo_inputs.shape[0], (n,), generator=generator).to(self.pseudo_inputs.device)
        if hasattr(q, "__getitem__"):
            return q[k].rsample(generator=generator).detach()
        z = q.rsample(n, generator=generator)                        # [n, K, ...]
        return z[torch.arange(n, device=z.device), k].detach()

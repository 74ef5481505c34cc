"""The per-sample ELBO terms of every image of a data set, batch by batch (not FID: that is ``zoo evaluate``).

``zoo.diagnose`` and the trainer's held-out evaluation both call :func:`dataset_elbo`, so both report
the same estimator: ``model.elbo_and_posterior`` per batch, which sums exactly over a discrete
posterior's support (an enumerable posterior) and otherwise draws one z ~ q(z|x) per image.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from zoo import contracts as c


@dataclass
class DatasetELBO:
    """Per-sample ELBO terms (nats) of N images, on the CPU, and what diagnostics need beside them."""

    n: int
    terms: dict[str, Tensor]                      # "elbo", "distortion", "rate" [N], extras [N, ...]
    posteriors: list[Any] = field(default_factory=list)   # q(z|x) per batch (keep_posteriors=True)
    kl_per_dim: Tensor | None = None              # [N, *latent_shape] where the prior gives it
    exact: bool = False                           # True when every ELBO was an exact sum over z

    def mean(self, key: str) -> float:
        return float(self.terms[key].double().mean())


@torch.no_grad()
def dataset_elbo(model, data: Tensor, *, batch_size: int = 500, keep_posteriors: bool = False) -> DatasetELBO:
    """The ELBO terms of every image in ``data`` (uint8 or float images), batch by batch."""
    terms: dict[str, list[Tensor]] = {}
    posteriors: list[Any] = []
    kl_dims: list[Tensor] = []
    per_dim = c.has(model.prior, c.PerDimKL)
    exact = True
    from zoo.progress import bar

    for start in bar(range(0, len(data), batch_size), desc=f"evaluate {model.name}", unit="batch"):
        x = model.prepare(data[start:start + batch_size])
        elbo, q = model.elbo_and_posterior(x)
        exact = exact and model.enumerates(q)
        for key, value in elbo.as_dict().items():
            terms.setdefault(key, []).append(value.detach().double().cpu())
        if keep_posteriors:
            posteriors.append(q)
        if per_dim:  # None: the prior has no per-dimension KL for this kind of posterior
            kl = model.prior.kl_per_dim(q)
            per_dim = kl is not None
            if per_dim:
                kl_dims.append(kl.detach().float().cpu())
    return DatasetELBO(len(data), {k: torch.cat(v) for k, v in terms.items()}, posteriors,
                      torch.cat(kl_dims) if kl_dims and per_dim else None, exact and len(data) > 0)

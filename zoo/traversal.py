"""Latent traversals and interpolations: what each latent dimension draws, and paths between two images.

``traverse``: one row per latent dimension, sorted by its KL (the mean over the data of KL(q(z_d|x) || p(z_d)),
nats), each row the decoder's mean at z = reference + offset * e_d for evenly spaced offsets in [-span, span]
(the reference: the posterior mean E_q[z|x] of one image, or z = 0).  ``dims="auto"`` keeps the active
dimensions (Cov_x E_q[z_d] > 0.01, Burda et al. 2015), or the most informative one when none is active.

``interpolate``: for pairs of images (a, b), the decoder's mean along the spherical interpolation between their
posterior means (White 2016, "Sampling generative networks"):

    slerp(mu_a, mu_b; t) = sin((1 - t) w) / sin(w) mu_a + sin(t w) / sin(w) mu_b,   cos w = <mu_a, mu_b> / (|mu_a| |mu_b|)

(the straight line where w is ~0); t = 0 and t = 1 decode mu_a and mu_b exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from zoo import contracts as c
from zoo.diagnostics import ACTIVE_THRESHOLD
from zoo.errors import InputError
from zoo.model import LatentModel


@dataclass(frozen=True)
class Traversal:
    """``images [len(dims) * steps, C, H, W]`` in [0, 1], row-major (row r = dimension ``dims[r]``)."""

    images: Tensor
    dims: list[int]
    kl: list[float]          # KL of each row's dimension, nats
    offsets: list[float]     # the offsets along each row (the same for every row)

    @property
    def labels(self) -> list[str]:
        return [f"z{d}  KL {k:.2f}" for d, k in zip(self.dims, self.kl)]


def _flat_vector_latent(model: LatentModel, what: str) -> int:
    if len(model.latent_shape) != 1:
        raise InputError(f"{what}: {model.name} has a latent of shape {tuple(model.latent_shape)}; traversals need a "
                         f"vector latent [D]")
    if c.has(model.prior, c.DiscreteSupport):  # one-hot codes: a sweep of a coordinate is no latent value
        raise InputError(f"{what}: {model.name} has a discrete latent (its prior {type(model.prior).__name__} puts "
                         f"mass on a finite support of codes); sweeping or blending its coordinates decodes points "
                         f"that are not latent values. Sample it instead: zoo sample {model.name}")
    return int(model.latent_shape[0])


def _real_valued(model: LatentModel, posterior, what: str) -> None:
    if c.is_fixed(posterior) or not posterior.mean.dtype.is_floating_point or c.has(posterior, c.EnumerablePosterior):
        raise InputError(f"{what}: {model.name}'s posterior has no real-valued mean to {what}"
                         + (" (it is a distribution over a discrete support)"
                            if c.has(posterior, c.EnumerablePosterior) else ""))


@torch.no_grad()
def latent_statistics(model: LatentModel, data: Tensor, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """(KL per dimension ``[D]`` in nats, posterior means ``[N, D]``) over the images ``data``."""
    from zoo.dataset_elbo import dataset_elbo

    evaluation = dataset_elbo(model, data, batch_size=batch_size, keep_posteriors=True)
    if evaluation.kl_per_dim is None:
        raise InputError(f"traverse: the prior of {model.name} gives no KL per dimension (zoo.contracts.PerDimKL) "
                         f"for its posterior, so the rows cannot be sorted by KL")
    _real_valued(model, evaluation.posteriors[0], "traverse")
    means = torch.cat([q.mean.flatten(1) for q in evaluation.posteriors]).float().cpu()
    return evaluation.kl_per_dim.flatten(1).double().mean(0).float(), means


def choose_dims(dims: str | Sequence[int], kl: Tensor, means: Tensor, max_dims: int = 16) -> list[int]:
    """The dimensions to draw, sorted by KL (largest first): ``"auto"`` (the active ones, at most ``max_dims``;
    the top one by KL when none is active), ``"all"``, or indices (``"0,3"`` or a list)."""
    if max_dims < 1:
        raise InputError(f"--max-dims {max_dims}: must be >= 1 (rows to draw)")
    d = kl.numel()
    if dims == "auto":
        active = (means.var(0, unbiased=False) > ACTIVE_THRESHOLD).nonzero().flatten().tolist()
        chosen = active or [int(kl.argmax())]
    elif dims == "all":
        chosen = list(range(d))
    else:
        try:
            chosen = [int(t) for t in (dims.split(",") if isinstance(dims, str) else dims) if str(t).strip() != ""]
        except ValueError:
            raise InputError(f"--dims {dims!r}: expected 'auto', 'all' or comma-separated indices like 0,3,5") from None
        bad = [i for i in chosen if not 0 <= i < d]
        if bad or not chosen or len(set(chosen)) != len(chosen):
            raise InputError(f"--dims {dims!r}: latent dimensions are 0..{d - 1}, each at most once"
                             + (f"; {bad} out of range" if bad else ""))
    chosen = sorted(chosen, key=lambda i: (-float(kl[i]), i))
    return chosen[:max_dims] if dims == "auto" else chosen


@torch.no_grad()
def decode_mean(model: LatentModel, z: Tensor) -> Tensor:
    """Images in [0, 1] of the decoder's mean at latents ``z [B, D]``."""
    z = z.to(model.device, model.dtype).reshape(len(z), *model.latent_shape)
    return model.to_images(model.decode(z).mean).float().cpu()


@torch.no_grad()
def traverse(model: LatentModel, data: Tensor, *, dims: str | Sequence[int] = "auto", steps: int = 9,
             span: float = 2.5, reference: str | int = 0, max_dims: int = 16) -> Traversal:
    """A :class:`Traversal`: ``reference`` is the index of the image whose posterior mean the rows sweep
    around, or ``"zero"``; offsets are ``steps`` values evenly spaced in [-span, span]."""
    _flat_vector_latent(model, "traverse")
    if steps < 2:
        raise InputError(f"--steps must be >= 2 (a sweep needs two ends), got {steps}")
    if not span > 0:
        raise InputError(f"--span must be > 0, got {span}")
    model.eval()
    kl, means = latent_statistics(model, data)
    chosen = choose_dims(dims, kl, means, max_dims)
    if reference == "zero":
        ref = torch.zeros(means.shape[1])
    else:
        if not 0 <= int(reference) < len(means):
            raise InputError(f"--reference {reference}: the data has images 0..{len(means) - 1}")
        ref = means[int(reference)]
    offsets = torch.linspace(-span, span, steps)
    z = ref.repeat(len(chosen) * steps, 1)
    for r, d in enumerate(chosen):
        z[r * steps:(r + 1) * steps, d] = ref[d] + offsets
    return Traversal(decode_mean(model, z), chosen, [float(kl[d]) for d in chosen], offsets.tolist())


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between the rows of ``a`` and ``b`` ``[P, D]`` at ``t [S]``: ``[P, S, D]``
    (the module docstring's formula; linear where the angle is below 1e-4)."""
    a, b = a.double(), b.double()
    t = t.double().view(1, -1, 1)
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)
    w = torch.arccos(cos.clamp(-1.0, 1.0)).view(-1, 1, 1)
    small = w < 1e-4
    sw = torch.sin(w).where(~small, torch.ones_like(w))
    wa = torch.where(small, 1 - t, torch.sin((1 - t) * w) / sw)
    wb = torch.where(small, t, torch.sin(t * w) / sw)
    return (wa * a[:, None] + wb * b[:, None]).float()


@torch.no_grad()
def interpolate(model: LatentModel, a: Tensor, b: Tensor, *, steps: int = 8) -> Tensor:
    """Images ``[P * steps, C, H, W]`` in [0, 1]: row p decodes slerp(E_q[z|a_p], E_q[z|b_p]; t), t = 0..1."""
    _flat_vector_latent(model, "interpolate")
    if steps < 2:
        raise InputError(f"--steps must be >= 2 (the two ends), got {steps}")
    model.eval()
    qa, qb = model.encode(a.to(model.device)), model.encode(b.to(model.device))
    _real_valued(model, qa, "interpolate")
    path = slerp(qa.mean.flatten(1).cpu(), qb.mean.flatten(1).cpu(), torch.linspace(0, 1, steps))
    return decode_mean(model, path.reshape(-1, path.shape[-1]))


def pick_pairs(n: int, pairs: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """``pairs`` disjoint pairs of image indices out of ``n``, drawn with ``seed``."""
    if pairs < 1:
        raise InputError(f"--pairs {pairs}: must be >= 1")
    if 2 * pairs > n:
        raise InputError(f"--pairs {pairs}: needs {2 * pairs} images, the data has {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:2 * pairs].tolist()
    return order[0::2], order[1::2]


__all__ = ["Traversal", "traverse", "interpolate", "slerp", "choose_dims", "latent_statistics", "pick_pairs",
           "decode_mean"]

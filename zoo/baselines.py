"""Baselines with no latent: what a model on one data space must beat.

Fitted on ``fit_split`` (default train), scored on ``split`` (default test), one number per image, reported
as the mean negative log-likelihood in nats per image and bits/dim with its standard error over the images:

8-bit space (a mass over the 256 values v of each of the D pixels):
  uniform-256         P(v) = 1/256                                         -log P = D log 256 (exactly 8 bits/dim)
  uniform-levels      P(v) = 1/L on the L values the fit split uses         -log P = D log L (inf if a scored
                      (``zoo:digits``: L = 17)                              image has a value outside them)
  categorical-levels  per pixel d, P_d(v_k) = (n_dk + a) / (N + a L) over the fit split's L values
                      (add-a / Laplace smoothing, a = ``smoothing``, default 1)
  categorical-256     per pixel d, P_d(v) = (n_dv + a) / (N + 256 a) over all 256 values
binarised space (x = 1[x01 > 0.5]):
  uniform             P(x) = 1/2                                           -log P = D log 2 (exactly 1 bit/dim)
  bernoulli           per pixel d, p_d = (n_d + a) / (N + 2 a), n_d the count of ones

The per-pixel models are the maximum-likelihood product of independent pixels with the stated smoothing;
their NLL is exact (no bound).  A continuous-density space has no discrete baseline here.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from zoo.distributions import bits_per_dim
from zoo.errors import UsageError


def _row(name: str, description: str, nll: Tensor, dims: int, fit: str, split: str) -> dict[str, Any]:
    """nll: ``[N]`` nats per image (float64)."""
    n = nll.numel()
    mean = float(nll.mean())
    se = float(nll.std(unbiased=True) / math.sqrt(n)) if n > 1 and math.isfinite(mean) else 0.0
    return {"model": name, "baseline": True, "description": description, "nll": mean, "nll_se": se,
            "bpd": bits_per_dim(mean, dims), "bpd_se": bits_per_dim(se, dims), "n": n, "fit_split": fit, "split": split, "dims": dims}


def _levels_8bit(x: Tensor) -> Tensor:
    if x.dtype != torch.uint8:
        raise UsageError(f"8-bit baselines take uint8 images, got {x.dtype}")
    return x.reshape(len(x), -1).long()


def categorical_levels_nll(train: Tensor, test: Tensor, *, smoothing: float = 1.0) -> Tensor:
    """Per image of ``test``: -log P (nats, float64) under the per-pixel categorical over the L values ``train``
    uses, P_d(v_k) = (n_dk + a) / (N + a L) (a = ``smoothing``); inf for an image with a value outside them.
    uint8 images ``[N, ...]``."""
    tr, te = _levels_8bit(train), _levels_8bit(test)
    levels = torch.unique(tr)
    L, d = levels.numel(), tr.shape[1]
    index = torch.full((256,), -1, dtype=torch.long)
    index[levels] = torch.arange(L)
    k_te = index[te]
    counts = torch.zeros(d, L, dtype=torch.float64)
    counts.scatter_add_(1, index[tr].t().contiguous(), torch.ones(d, len(tr), dtype=torch.float64))
    logp = torch.log((counts + smoothing) / (len(tr) + smoothing * L))
    nll = -logp.gather(1, k_te.clamp(min=0).t()).t().sum(1)
    nll[(k_te < 0).any(1)] = math.inf
    return nll


def baselines_8bit(train: Tensor, test: Tensor, *, smoothing: float = 1.0, fit: str = "train",
                   split: str = "test") -> list[dict[str, Any]]:
    """The 8-bit rows for uint8 images ``train`` (fit) and ``test`` (scored), shape ``[N, ...]``."""
    if smoothing <= 0:
        raise UsageError(f"baselines: smoothing must be > 0 (an unseen value would get mass 0), got {smoothing}")
    tr, te = _levels_8bit(train), _levels_8bit(test)
    d = tr.shape[1]
    if te.shape[1] != d:
        raise UsageError(f"baselines: {fit} images have {d} values each, {split} images {te.shape[1]}")
    levels = torch.unique(tr)
    L = levels.numel()
    index = torch.full((256,), -1, dtype=torch.long)
    index[levels] = torch.arange(L)
    k_te = index[te]
    outside = int((k_te < 0).any(1).sum())
    rows = [_row("uniform-256", "uniform over all 256 values of a pixel", torch.full((len(te),), d * math.log(256),
                                                                                     dtype=torch.float64), d, fit, split)]
    uni = torch.full((len(te),), d * math.log(L), dtype=torch.float64)
    uni[(k_te < 0).any(1)] = math.inf
    rows.append(_row("uniform-levels", f"uniform over the {L} values the {fit} split uses", uni, d, fit, split))
    nll = categorical_levels_nll(train, test, smoothing=smoothing)
    rows.append(_row("categorical-levels", f"per-pixel categorical over the {L} values the {fit} split uses, "
                                           f"add-{smoothing:g} smoothing, fitted on [{fit}]", nll, d, fit, split))
    counts = torch.zeros(d, 256, dtype=torch.float64)
    counts.scatter_add_(1, tr.t().contiguous(), torch.ones(d, len(tr), dtype=torch.float64))
    logp = torch.log((counts + smoothing) / (len(tr) + smoothing * 256))
    nll = -logp.gather(1, te.t()).t().sum(1)
    rows.append(_row("categorical-256", f"per-pixel categorical over all 256 values, add-{smoothing:g} smoothing, "
                                        f"fitted on [{fit}]", nll, d, fit, split))
    if outside:
        for r in rows[1:3]:
            r["note"] = f"{outside} {split} image(s) use a value the {fit} split never does: probability 0"
    return rows


def baselines_binary(train: Tensor, test: Tensor, *, smoothing: float = 1.0, fit: str = "train",
                     split: str = "test") -> list[dict[str, Any]]:
    """The binarised rows for 0/1 images ``train`` (fit) and ``test`` (scored)."""
    if smoothing <= 0:
        raise UsageError(f"baselines: smoothing must be > 0 (an unseen value would get mass 0), got {smoothing}")
    tr, te = train.reshape(len(train), -1).double(), test.reshape(len(test), -1).double()
    for name, x in ((fit, tr), (split, te)):
        if not bool(((x == 0) | (x == 1)).all()):
            raise UsageError(f"binarised baselines: the {name} images are not 0/1")
    d = tr.shape[1]
    p = (tr.sum(0) + smoothing) / (len(tr) + 2 * smoothing)
    nll = -(te * p.log() + (1 - te) * torch.log1p(-p)).sum(1)
    return [_row("uniform", "uniform over {0, 1} per pixel", torch.full((len(te),), d * math.log(2),
                                                                        dtype=torch.float64), d, fit, split),
            _row("bernoulli", f"per-pixel Bernoulli, add-{smoothing:g} smoothing, fitted on [{fit}]", nll, d, fit,
                 split)]


def baselines(data: str, kind: str, *, split: str = "test", fit_split: str = "train", smoothing: float = 1.0,
              data_options: dict | None = None) -> list[dict[str, Any]]:
    """The baseline rows of space ``kind`` (``8-bit`` or ``binarised``; see zoo.data_space) on ``data``."""
    from zoo.data import load_tensors

    train = load_tensors(data, fit_split, **(data_options or {}))
    test = load_tensors(data, split, **(data_options or {}))
    if kind == "8-bit":
        if train.dtype != torch.uint8:
            raise UsageError(f"--data {data}: 8-bit baselines need uint8 images, the source gives {train.dtype}")
        return baselines_8bit(train, test, smoothing=smoothing, fit=fit_split, split=split)
    if kind == "binarised":
        def binarise(x: Tensor) -> Tensor:
            x01 = x.float() / 255 if x.dtype == torch.uint8 else x.float()
            return (x01 > 0.5).double()
        return baselines_binary(binarise(train), binarise(test), smoothing=smoothing, fit=fit_split, split=split)
    raise UsageError(f"baselines: no discrete baseline for a {kind!r} space (8-bit or binarised)")

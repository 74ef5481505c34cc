"""Disentanglement on data with known factors: the mutual information gap (MIG, Chen et al. 2018).

For factors v_1..v_K and latent dimensions z_1..z_D (here the posterior means E_q[z_d|x]),

    MIG = 1/K  sum_k  ( I(z_{j_k}; v_k) - I(z_{j'_k}; v_k) ) / H(v_k)                (Chen et al. 2018, eq. 6)

where j_k = argmax_j I(z_j; v_k) and j'_k the runner-up.  Each term lies in [0, 1]: 1 when one latent
dimension holds all of factor k and no other holds any of it, 0 when two hold it alike (or none does).

Estimator: the *histogram* estimator of the reference implementation in disentanglement_lib (Locatello
et al. 2019, ``_histogram_discretize`` + ``sklearn.metrics.mutual_info_score``): every latent mean is cut
into ``bins`` equal-width bins over its range on the evaluated set, each factor is taken as categories of
its distinct values (or cut the same way when it has more than ``bins`` of them), and

    I(a; b) = sum_{a,b} p(a,b) log( p(a,b) / (p(a) p(b)) ),   H(v) = -sum_v p(v) log p(v)      [nats]

with the empirical frequencies of the N points (a plug-in estimate: biased upward by about
(bins-1)(|v|-1)/(2N) nats, a bias the gap between two dimensions mostly cancels).  Chen et al.'s own MIG
estimates I(z_j; v_k) from the full posterior q(z_j|x) instead; the means-and-histogram variant is the
one most papers report.  All functions are pure (numpy in, numbers out).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

DEFAULT_BINS = 20  # disentanglement_lib's default num_bins


def discretize(values: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Integer codes ``[N, D]``: each column of ``values [N, D]`` cut into ``bins`` equal-width bins over
    its own range (a constant column is one bin)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"discretize: expected values [N, D], got shape {values.shape}")
    out = np.zeros(values.shape, dtype=np.int64)
    for d in range(values.shape[1]):
        col = values[:, d]
        lo, hi = col.min(), col.max()
        if hi > lo:
            out[:, d] = np.clip(((col - lo) / (hi - lo) * bins).astype(np.int64), 0, bins - 1)
    return out


def factor_codes(factors: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """Integer codes ``[N, K]`` of factor values ``[N, K]``: a factor with at most ``bins`` distinct values
    keeps them as categories; a (near-)continuous one is cut into ``bins`` equal-width bins."""
    factors = np.asarray(factors, dtype=np.float64)
    if factors.ndim != 2:
        raise ValueError(f"factor_codes: expected factors [N, K], got shape {factors.shape}")
    out = np.empty(factors.shape, dtype=np.int64)
    for k in range(factors.shape[1]):
        uniq, inverse = np.unique(factors[:, k], return_inverse=True)
        out[:, k] = inverse if len(uniq) <= bins else discretize(factors[:, k:k + 1], bins)[:, 0]
    return out


def discrete_entropy(a: np.ndarray) -> float:
    """H(a) = -sum p log p of the empirical distribution of integer codes ``a [N]``, in nats."""
    _, counts = np.unique(np.asarray(a), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def discrete_mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) = sum p(a,b) log(p(a,b) / (p(a) p(b))) of two integer code arrays ``[N]``, in nats (>= 0)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"discrete_mutual_information: expected two [N] arrays, got {a.shape} and {b.shape}")
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    joint = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(joint, (ia, ib), 1.0)
    joint /= joint.sum()
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float(max((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum(), 0.0))


def mutual_information_matrix(codes: np.ndarray, factor_codes_: np.ndarray) -> np.ndarray:
    """``[D, K]``: I(z_d; v_k) in nats for latent codes ``[N, D]`` and factor codes ``[N, K]``."""
    d, k = codes.shape[1], factor_codes_.shape[1]
    return np.array([[discrete_mutual_information(codes[:, i], factor_codes_[:, j]) for j in range(k)]
                     for i in range(d)])


def mig(latents: np.ndarray, factors: np.ndarray, names: Sequence[str] | None = None,
        bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """The mutual information gap of latent means ``[N, D]`` against factor values ``[N, K]``.

    Returns ``mig`` (the mean over factors), ``mig_per_factor`` ({name: gap / H(v_k)}), ``mig_dims``
    ({name: [j_k, j'_k]}, the two most informative dimensions), ``factor_entropy`` ({name: H(v_k)} in
    nats) and ``mi_matrix`` (I(z_d; v_k) in nats, D rows of K).  A factor with a single value (H = 0)
    carries nothing to disentangle and is left out of the mean."""
    latents, factors = np.asarray(latents, dtype=np.float64), np.asarray(factors, dtype=np.float64)
    if latents.ndim != 2 or factors.ndim != 2 or len(latents) != len(factors):
        raise ValueError(f"mig: expected latents [N, D] and factors [N, K] with the same N, got "
                         f"{latents.shape} and {factors.shape}")
    if latents.shape[1] < 2:
        raise ValueError(f"mig: needs at least 2 latent dimensions (the gap is between the best two), got "
                         f"{latents.shape[1]}")
    names = list(names) if names is not None else [f"factor_{k}" for k in range(factors.shape[1])]
    vc = factor_codes(factors, bins)
    mi = mutual_information_matrix(discretize(latents, bins), vc)
    per, dims, entropy = {}, {}, {}
    for k, name in enumerate(names):
        h = discrete_entropy(vc[:, k])
        entropy[name] = h
        order = np.argsort(-mi[:, k], kind="stable")
        dims[name] = [int(order[0]), int(order[1])]
        if h > 0:
            per[name] = float((mi[order[0], k] - mi[order[1], k]) / h)
    return {"mig": float(np.mean(list(per.values()))) if per else None, "mig_per_factor": per,
            "mig_dims": dims, "factor_entropy": entropy, "mi_matrix": mi.tolist()}


ESTIMATOR = (f"MIG (Chen et al. 2018): mean over factors of (I(z_j1; v_k) - I(z_j2; v_k)) / H(v_k), with "
             f"the histogram estimator of disentanglement_lib (posterior means cut into {DEFAULT_BINS} "
             f"equal-width bins, factors as categories; plug-in MI over the N points, nats)")

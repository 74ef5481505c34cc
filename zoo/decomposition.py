"""The rate split into index-code MI, total correlation and dimension-wise KL (Chen et al. 2018, eq. 2).

For z ~ q(z|x_n), with the aggregate posterior q(z) and its marginals q(z_d):

    E_x KL(q(z|x) || p(z)) = E[log q(z|x) - log q(z)]                  index-code MI  I_q(x; z)
                           + E[log q(z) - sum_d log q(z_d)]            total correlation KL(q(z) || prod_d q(z_d))
                           + E[sum_d log q(z_d) - log p(z)]            dimension-wise KL sum_d KL(q(z_d) || p(z_d))

(the last is a sum of KLs when p(z) factorises over dimensions).  log q(z) and log q(z_d) are mixtures
over points, ``logsumexp_m [log q(z|x_m) + log w_m]``:

* diagnose (:func:`zoo.diagnostics.aggregate_posterior_split`): the exact aggregate posterior of the N
  evaluated points, w_m = 1/N (the full-set estimator);
* beta-TCVAE training: the M points of a minibatch of a data set of N points, with the minibatch-
  stratified weights of :func:`mss_log_weights` (Chen et al. 2018, appendix C.2).

Both call :func:`mixture_log_density` on a ``[rows, M, D]`` tensor of log q(z_{row, d} | x_m); every
function here is a pure function of tensors, in nats.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def mixture_log_density(cross_per_dim: Tensor, log_w: Tensor) -> tuple[Tensor, Tensor]:
    """(log q(z_r), sum_d log q(z_{r,d})) for each row r, nats, ``[rows]`` each.

    ``cross_per_dim``: log q(z_{r,d} | x_m), ``[rows, M, D]``; ``log_w``: the mixture's log weights,
    ``[rows, M]`` or ``[M]``.
        log q(z_r)       = logsumexp_m [sum_d log q(z_{r,d}|x_m) + log w_rm]
        log q(z_{r,d})   = logsumexp_m [log q(z_{r,d}|x_m) + log w_rm]"""
    w = log_w if log_w.dim() == 2 else log_w.unsqueeze(0).expand(cross_per_dim.shape[0], -1)
    joint = torch.logsumexp(cross_per_dim.sum(2) + w, 1)
    marginals = torch.logsumexp(cross_per_dim + w.unsqueeze(2), 1).sum(1)
    return joint, marginals


def tc_terms(log_q_own: Tensor, log_qz: Tensor, log_qz_marginals: Tensor, log_pz: Tensor
             ) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample (index-code MI, total correlation, dimension-wise KL), nats, from one z each:
    log q(z|x) - log q(z),  log q(z) - sum_d log q(z_d),  sum_d log q(z_d) - log p(z).
    They sum to log q(z|x) - log p(z), the one-sample rate, exactly (Chen et al. 2018, eq. 2)."""
    return log_q_own - log_qz, log_qz - log_qz_marginals, log_qz_marginals - log_pz


def paired_tc_terms(mi_terms: Tensor, log_q_own: Tensor, log_qz_marginals: Tensor, rate: Tensor
                    ) -> tuple[Tensor, Tensor]:
    """Per-sample (total correlation, dimension-wise KL), nats, paired with the index-code MI terms.

    For a posterior that factorises over dimensions, log q(z|x) = sum_d log q(z_d|x), so

        B = log q(z|x) - sum_d log q(z_d)  = sum_d [log q(z_d|x) - log q(z_d)]   (sum_d I(x; z_d) per sample)
        TC                = B - mi_terms                                        (Chen et al. 2018, eq. 2)
        dimension-wise KL = rate - B

    with ``mi_terms`` = log q(z|x) - log q(z) at the same samples (the index-code MI, I_q's own terms) and
    ``rate`` the rate of each point (closed form where the prior gives it, broadcast over samples).  Every
    term is a difference of log-densities at the same z, so a collapsed posterior reads 0 in each, and
    mi + TC + dimension-wise KL = rate sample by sample."""
    b = log_q_own - log_qz_marginals
    return b - mi_terms, rate - b


def mss_log_weights(batch: int, dataset_size: int, *, device=None, dtype=None) -> Tensor:
    """log w_ij of the minibatch-stratified sampling estimator (Chen et al. 2018, appendix C.2), ``[M, M]``:
    q(z_i) ~= sum_j w_ij q(z_i|x_j) for a minibatch of M points from N, with w_ii = 1/N (z_i's own point),
    w_ij = 1/(M-1) for M-2 others and (N - M + 1) / (N (M - 1)) for one stratum point (here i+1 mod M).
    Each row sums to 1."""
    n, m = int(dataset_size), int(batch) - 1
    if m < 1 or n < batch:
        raise ValueError(f"the minibatch-stratified estimator needs 2 <= batch ({batch}) <= dataset_size ({n})")
    w = torch.full((batch, batch), 1.0 / m, dtype=torch.float64)
    rows = torch.arange(batch)
    w[rows, rows] = 1.0 / n                                   # z_i's own point
    w[rows, (rows + 1) % batch] = (n - m) / (n * m)           # the stratum point, one per row
    return w.log().to(device=device, dtype=dtype or torch.float32)


def minibatch_log_weights(batch: int, dataset_size: int, *, device=None, dtype=None) -> Tensor:
    """log w of the minibatch-weighted sampling estimator (Chen et al. 2018, appendix C.1): w = 1/(N M) for
    every point, ``[M]`` (the weights sum to 1/N: the paper's biased, simpler estimator)."""
    return torch.full((batch,), -math.log(batch * dataset_size), device=device, dtype=dtype or torch.float32)

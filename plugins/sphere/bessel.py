"""log I_v(kappa), the modified Bessel function of the first kind, differentiable in kappa.

The value comes from SciPy's exponentially scaled ``ive`` (log I_v(k) = log ive(v, k) + k, stable
for large k; float64 on the CPU), with the small-argument series v log(k/2) - log Gamma(v + 1)
where ``ive`` underflows.  The gradient is

    d/dk log I_v(k) = I_v'(k) / I_v(k) = I_{v+1}(k) / I_v(k) + v / k        (I_v' = I_{v+1} + (v/k) I_v)

(Davidson et al. 2018 differentiate their KL the same way).  SciPy ships with scikit-learn, a
latent-zoo dependency.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def _log_ive(v: float, k: np.ndarray) -> np.ndarray:
    from scipy.special import ive

    with np.errstate(divide="ignore"):
        out = np.log(ive(v, k))
    small = ~np.isfinite(out)
    if small.any():  # ive underflowed (large order, small argument): the leading series term
        ks = k[small]
        out[small] = v * np.log(ks / 2) - math.lgamma(v + 1) - ks
    return out


class _LogBesselI(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kappa: Tensor, v: float) -> Tensor:
        k = kappa.detach().double().cpu().numpy()
        log_ive = _log_ive(v, k)
        ctx.save_for_backward(kappa)
        ctx.v, ctx.log_ive = v, log_ive
        return torch.as_tensor(log_ive + k, dtype=kappa.dtype, device=kappa.device)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (kappa,) = ctx.saved_tensors
        k = kappa.detach().double().cpu().numpy()
        ratio = np.exp(_log_ive(ctx.v + 1, k) - ctx.log_ive)                # I_{v+1}(k) / I_v(k)
        d = torch.as_tensor(ratio + ctx.v / k, dtype=kappa.dtype, device=kappa.device)
        return grad * d, None


def log_bessel_i(v: float, kappa: Tensor) -> Tensor:
    """log I_v(kappa) elementwise for kappa > 0 (any shape), differentiable in kappa."""
    return _LogBesselI.apply(kappa, float(v))

"""MADE: a masked autoencoder for distribution estimation (Germain et al. 2015).

An MLP whose weight masks make output group i depend only on input groups with a smaller
*degree*: with input degrees d(in) and output degrees d(out) (1-based positions in the
autoregressive order), a hidden unit of degree m sees the inputs with d(in) <= m, and an output
of degree d sees the hidden units with m < d (Germain et al. eq. 12-13).  So
``outputs[d]`` is a function of ``inputs[< d]`` (and of an unmasked ``context``, as IAF's h).

Used by the IAF posterior (:mod:`flow_steps`), the MAF prior (:mod:`maf`) and the autoregressive
code prior (:mod:`codes_prior`).  Several inputs may share a degree (the K one-hot entries of
one code position) and several outputs too (mean and log-scale, or K logits, per position).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo_plugins.basic.layers import activation as act_layer


class MaskedLinear(nn.Linear):
    """``y = x (W * mask)^T + b`` with a fixed 0/1 mask ``[out, in]`` (a buffer moved with the module, not saved:
    the degrees rebuild it)."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


def hidden_degrees(width: int, max_degree: int) -> Tensor:
    """Degrees 0 .. max_degree - 1 assigned cyclically: a degree-0 unit sees only the context/bias."""
    return torch.arange(width) % max(1, max_degree)


class MADE(nn.Module):
    """outputs ``[..., n_out]`` from inputs ``[..., n_in]`` (+ context ``[..., n_ctx]``), autoregressive in the degrees.

    ``in_degrees`` and ``out_degrees`` are integer tensors (1-based); ``zero_last`` starts the
    output layer at zero (a flow that starts as the identity)."""

    def __init__(self, in_degrees: Tensor, out_degrees: Tensor, hidden: list[int], *, context: int = 0,
                 activation: str = "relu", zero_last: bool = False):
        super().__init__()
        in_degrees, out_degrees = torch.as_tensor(in_degrees), torch.as_tensor(out_degrees)
        max_degree = int(max(in_degrees.max(), out_degrees.max()))
        degrees = [in_degrees]
        layers: list[nn.Module] = []
        for width in hidden:
            d = hidden_degrees(width, max_degree)
            layers.append(MaskedLinear(len(degrees[-1]), width, (d[:, None] >= degrees[-1][None, :]).float()))
            degrees.append(d)
        self.hidden = nn.ModuleList(layers)
        self.out = MaskedLinear(len(degrees[-1]), len(out_degrees),
                                (out_degrees[:, None] > degrees[-1][None, :]).float())
        if zero_last:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)
        self.context = nn.Linear(context, hidden[0], bias=False) if context and hidden else None
        self.act = act_layer(activation)
        self.register_buffer("in_degrees", in_degrees.clone(), persistent=False)
        self.register_buffer("out_degrees", out_degrees.clone(), persistent=False)

    def project_context(self, context: Tensor) -> Tensor:
        """The context's contribution to the first hidden layer (compute once, reuse over many passes)."""
        return self.context(context)

    def forward(self, x: Tensor, context: Tensor | None = None, *, projected: Tensor | None = None) -> Tensor:
        """``context`` ``[..., n_ctx]``, or ``projected`` = ``project_context(context)`` ``[..., hidden[0]]``."""
        h = x
        for i, layer in enumerate(self.hidden):
            h = layer(h)
            if i == 0 and self.context is not None:
                if projected is None:
                    if context is None:
                        raise ValueError("this MADE was built with a context input: pass context=")
                    projected = self.context(context)
                h = h + projected
            h = self.act(h)
        return self.out(h)


def order_degrees(order: Tensor) -> Tensor:
    """1-based degrees of D positions visited in ``order`` (a permutation of 0..D-1).

    ``order[j]`` is the position visited j-th, so position ``order[j]`` gets degree j + 1."""
    order = torch.as_tensor(order)
    deg = torch.empty_like(order)
    deg[order] = torch.arange(1, len(order) + 1)
    return deg

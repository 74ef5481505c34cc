"""Adapters that make modules written for other libraries honour zoo.contracts.

``MeanLogvarEncoder(net)`` turns an encoder that returns ``(mu, logvar)`` (a tuple, as many VAE tutorials' encoders do,
or pythae's ``ModelOutput(embedding=..., log_covariance=...)``) into the contract's encoder, ``x -> q(z|x)``:

    q(z|x) = N(mu(x), diag(exp(logvar(x))))     so  log_scale = logvar / 2

    model = zoo.build(encoder=MeanLogvarEncoder(MyTupleEncoder()), decoder=..., prior="standard-normal",
                      data_shape=(1, 28, 28), latent_shape=(16,))

The card records the adapter with the wrapped class's import path and its ``config`` (zoo.byo), so a saved model
is rebuilt as it was (loading it imports that path, only with ``trust_modules=True``, through the registry's
resolution of ``"module:attribute"`` targets).
"""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from zoo.distributions import DiagGaussian
from zoo.errors import ContractError


class MeanLogvarEncoder(nn.Module):
    """An encoder ``net(x) -> (mu, logvar)`` as a zoo encoder ``x -> DiagGaussian(mu, logvar / 2)``.

    ``net``: the module, or (as a saved card writes it) its import path ``"pkg.mod:Class"`` with ``net_args``."""

    posterior_type = DiagGaussian

    def __init__(self, net: nn.Module | str, net_args: dict[str, Any] | None = None):
        super().__init__()
        from zoo.registry import LazyFactory, import_path, module_args

        if isinstance(net, str):
            net = LazyFactory(net)(**(net_args or {}))
        if not isinstance(net, nn.Module):
            raise ContractError(f"MeanLogvarEncoder wraps a torch.nn.Module, got {type(net).__name__}")
        self.net = net
        self.config = {"net": import_path(net), "net_args": module_args(net)}

    def forward(self, x: Tensor) -> DiagGaussian:
        out = self.net(x)
        if hasattr(out, "embedding") and hasattr(out, "log_covariance"):   # pythae's encoder output
            out = (out.embedding, out.log_covariance)
        if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(t, Tensor) for t in out)):
            raise ContractError(f"MeanLogvarEncoder: the wrapped encoder {type(self.net).__qualname__} returned "
                                f"{type(out).__name__}, not a (mu, logvar) pair of tensors")
        mu, logvar = out
        if mu.shape != logvar.shape:
            raise ContractError(f"MeanLogvarEncoder: the wrapped encoder {type(self.net).__qualname__} returned mu of "
                                f"shape {list(mu.shape)} and logvar of shape {list(logvar.shape)}; they must match")
        return DiagGaussian(mu, 0.5 * logvar)

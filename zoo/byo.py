"""Bring your own module: a model from ``nn.Module`` objects written inline, without a plugin package.

    model = zoo.build(encoder=MyEncoder(), decoder=MyDecoder(), prior="standard-normal",
                      data_shape=(1, 8, 8), latent_shape=(16,))
    zoo.train(model, data="zoo:digits", out="runs/mine")
    model.save_pretrained("runs/mine-copy")
    zoo.load("runs/mine-copy", trust_modules=True)

Each component is an ``nn.Module`` honouring zoo.contracts (checked on build: a ContractError names
the missing member), a registered name, or ``{"name": NAME, **args}``.  The card records a module as
``{module: "pkg.mod:ClassName", args: {...}}``: ``args`` is the module's ``config`` attribute (a dict
of its constructor's keyword arguments) when it declares one, else empty, so the class must be
importable by that path and constructible from ``args`` again.  Loading imports the path only when
the caller opts in with ``trust_modules=True``: importing a module runs its code, and a card
downloaded from the Hub is not a reason to run code.  The card is assembled by the one assembler,
zoo.assemble.build_model (which imports a card's module path in module_from_card), as any card is.
"""
from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from zoo.assemble import build_model, contract_problem
from zoo.cards import Card, validate_zoo
from zoo.errors import CardError, ContractError, UntrustedCodeError
from zoo.registry import import_path, module_args  # noqa: F401 - how a card names a module (part of this API)



def check_module(kind: str, module: Any) -> None:
    """A ContractError naming the component's class and what it lacks (zoo.assemble.contract_problem)."""
    problem = contract_problem(kind, module)
    if problem:
        raise ContractError(f"the {kind} {type(module).__qualname__} {problem}")


def check_reloadable(kind: str, module: nn.Module) -> None:
    """Refuse to save a module the card could not rebuild: a class defined inside a function, or a constructor
    that needs arguments the module does not declare in ``config``."""
    from zoo.adapters import MeanLogvarEncoder

    if isinstance(module, MeanLogvarEncoder):  # the card rebuilds the wrapped module from its path and config
        check_reloadable(kind, module.net)
    path = import_path(module)
    if "<locals>" in path:
        raise ContractError(f"the {kind} class {path!r} is defined inside a function: a saved card cannot name it; "
                            f"define it at module level")
    try:
        inspect.signature(type(module)).bind(**module_args(module))
    except TypeError as e:
        raise ContractError(f"the {kind} {path!r} cannot be rebuilt from its card: {e}; declare its constructor's "
                            f"arguments in a `config` dict attribute") from None


def build(*, encoder: Any, decoder: Any, prior: Any = "standard-normal", data_shape, latent_shape,
          name: str = "byo", beta: float = 1.0, data: str = "unspecified", objective: dict | None = None,
          train: dict | None = None):
    """A LatentModel from modules and/or registered names (module docstring): the given modules become component
    specs of a card (``module: "pkg.mod:ClassName"``), which the one assembler (zoo.assemble.build_model) turns into
    the model as it does every card, the objective included."""
    given = {"encoder": encoder, "decoder": decoder, "prior": prior}
    zoo: dict[str, Any] = {"data": {"source": data, "shape": list(data_shape)},
                           "latent": {"shape": list(latent_shape)},
                           "objective": {"beta": beta, **(objective or {})}}
    if train:
        zoo["train"] = dict(train)
    modules: dict[str, nn.Module] = {}
    for kind, part in given.items():
        if isinstance(part, str):
            zoo[kind] = {"name": part}
        elif isinstance(part, dict) and "name" in part and not isinstance(part, nn.Module):
            zoo[kind] = dict(part)
        else:
            check_module(kind, part)
            zoo[kind] = {"module": import_path(part), "args": module_args(part)}
            modules[kind] = part
    card = Card(name, validate_zoo(zoo, f"zoo.build({name!r})"))
    try:
        model = build_model(card, modules=modules)
    except UntrustedCodeError:
        raise
    except CardError as e:  # zoo.build is given modules and names, not a card file: a contract problem
        raise ContractError(str(e)) from None
    trial_forward(model)
    return model


def _returned(value: Any) -> str:
    """A returned value described for an error: its type, and for a tuple the types (and shapes) inside."""
    from torch import Tensor

    if isinstance(value, (tuple, list)):
        inner = ", ".join(f"Tensor {list(v.shape)}" if isinstance(v, Tensor) else type(v).__name__ for v in value)
        return f"a {type(value).__name__} ({inner})"
    return f"a {type(value).__qualname__}"


def trial_forward(model, batch: int = 2) -> None:
    """Run the assembled model once on ``batch`` random images of its declared data shape (no gradient, eval mode,
    training flags restored) and refuse, naming the component, a return value the contract does not allow: the
    encoder must return a posterior (zoo.contracts.Posterior), the decoder an observation (zoo.contracts.Observation),
    and every per-sample term one value per image.  An encoder returning ``(mu, logvar)`` is pointed at
    zoo.adapters.MeanLogvarEncoder."""
    import torch

    from zoo import contracts as c

    who = {kind: model.sources.get(kind, type(getattr(model, kind)).__qualname__) for kind in ("encoder", "decoder")}
    shape = [batch, *model.data_shape]
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            x = model.prepare(torch.rand(*shape, generator=torch.Generator().manual_seed(0)))
            try:
                q = model.encoder(x)
            except Exception as e:  # noqa: BLE001 - any failure of the module is named with the input it got
                raise ContractError(f"the encoder {who['encoder']} failed on a trial input of the declared data shape "
                                    f"{shape}: {type(e).__name__}: {e}") from e
            lacking = c.missing_members(q, c.Posterior)
            if lacking:
                hint = ""
                if isinstance(q, (tuple, list)) or hasattr(q, "log_covariance"):
                    hint = ("; an encoder returning (mu, logvar) becomes one with "
                            "zoo.adapters.MeanLogvarEncoder(your_encoder)")
                raise ContractError(f"the encoder {who['encoder']} returned {_returned(q)} from forward(x) on a trial "
                                    f"input {shape}; the contract wants a posterior q(z|x) with rsample(), log_prob(z) "
                                    f"and mean (zoo.contracts.Posterior){hint}")
            z = q.rsample()
            try:
                obs = model.decoder(z)
            except Exception as e:  # noqa: BLE001
                raise ContractError(f"the decoder {who['decoder']} failed on the encoder's sample z of shape "
                                    f"{list(z.shape)}: {type(e).__name__}: {e}") from e
            lacking = c.missing_members(obs, c.Observation)
            if lacking:
                raise ContractError(f"the decoder {who['decoder']} returned {_returned(obs)} from forward(z); the "
                                    f"contract wants an observation p(x|z) with log_prob(x), mean and sample() "
                                    f"(zoo.contracts.Observation; e.g. return self.likelihood(params))")
            model.elbo(x, prepared=True)   # every per-sample term [B]: a ContractError names the component otherwise
    finally:
        for m, training in modes:
            m.training = training

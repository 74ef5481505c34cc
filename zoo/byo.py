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
downloaded from the Hub is not a reason to run code.
"""
from __future__ import annotations

import copy
import inspect
from importlib import import_module
from typing import Any

from torch import nn

from zoo.errors import CardError, ContractError, UntrustedCodeError



def import_path(module: nn.Module) -> str:
    """``"pkg.mod:ClassName"`` of a module's class."""
    cls = type(module)
    return f"{cls.__module__}:{cls.__qualname__}"


def module_args(module: nn.Module) -> dict[str, Any]:
    """The constructor arguments a module declares in its ``config`` dict attribute (empty when it has none)."""
    config = getattr(module, "config", None)
    return copy.deepcopy(config) if isinstance(config, dict) else {}


def check_module(kind: str, module: Any) -> None:
    """A ContractError naming the component's class and what it lacks (zoo.assemble.contract_problem)."""
    from zoo.assemble import contract_problem

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


def resolve_import_path(path: str) -> Any:
    module, _, attr = path.partition(":")
    obj: Any = import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def module_from_card(card, kind: str, *, trust: bool) -> nn.Module:
    """Import and construct the bring-your-own component the card names (only with ``trust``)."""
    from zoo.assemble import where

    path, args = card.component(kind)
    field = f"field 'zoo.{kind}.module'"
    if not trust:
        raise UntrustedCodeError(f"{where(card)}: {field}: the card names Python code to import, {path!r}; importing "
                                 f"it runs that code, so it is only done on request: pass trust_modules=True "
                                 f"(zoo.load / LatentModel.from_pretrained; --trust-modules of zoo sample, diagnose, evaluate and "
                                 f"fit-prior) if you trust this card")
    try:
        cls = resolve_import_path(path)
    except Exception as e:  # noqa: BLE001 - any import failure names the path
        raise CardError(f"{where(card)}: {field}: cannot import {path!r} ({type(e).__name__}: {e}); install the "
                        f"package that defines it or put it on sys.path") from None
    try:
        return cls(**args)
    except Exception as e:  # noqa: BLE001
        raise CardError(f"{where(card)}: {field}: {path!r} could not be constructed with {args or 'no arguments'}: "
                        f"{type(e).__name__}: {e}") from e


def build(*, encoder: Any, decoder: Any, prior: Any = "standard-normal", data_shape, latent_shape,
          name: str = "byo", beta: float = 1.0, data: str = "unspecified", objective: dict | None = None,
          train: dict | None = None):
    """A LatentModel from modules and/or registered names (module docstring), with a card that names them."""
    from zoo.cards import Card, validate_zoo
    from zoo.errors import ShapeError
    from zoo.model import LatentModel

    given = {"encoder": encoder, "decoder": decoder, "prior": prior}
    zoo: dict[str, Any] = {"data": {"source": data, "shape": list(data_shape)},
                           "latent": {"shape": list(latent_shape)},
                           "objective": {"beta": beta, **(objective or {})}}
    if train:
        zoo["train"] = dict(train)
    for kind, part in given.items():
        if isinstance(part, str):
            zoo[kind] = {"name": part}
        elif isinstance(part, dict) and "name" in part and not isinstance(part, nn.Module):
            zoo[kind] = dict(part)
        else:
            check_module(kind, part)
            zoo[kind] = {"module": import_path(part), "args": module_args(part)}
    card = Card(name, validate_zoo(zoo, f"zoo.build({name!r})"))
    # registered components come from the registry as a card would build them; given modules are used as they are
    named = {k: v for k, v in given.items() if not isinstance(v, nn.Module)}
    parts: dict[str, Any] = dict(given)
    sources = {k: f"module {import_path(v)!r}" for k, v in given.items() if isinstance(v, nn.Module)}
    plugins: dict[str, Any] = {k: {"module": import_path(v)} for k, v in given.items() if isinstance(v, nn.Module)}
    if named:
        from zoo.registry import get_registry

        for kind in named:
            spec_name, args = card.component(kind)
            entry = get_registry().get(kind, spec_name)
            parts[kind] = entry.factory(data_shape=tuple(data_shape), latent_shape=tuple(latent_shape), **args)
            check_module(kind, parts[kind])
            sources[kind] = f"{spec_name!r} from {entry.owner}"
            plugins[kind] = {"name": spec_name, "distribution": entry.owner.distribution,
                             "version": entry.owner.version, "module": entry.owner.module}
    try:
        model = LatentModel(parts["encoder"], parts["decoder"], parts["prior"], data_shape=tuple(data_shape),
                            latent_shape=tuple(latent_shape), name=name, beta=beta, config=card.zoo, sources=sources)
    except ShapeError as e:
        raise ContractError(str(e)) from None
    model.plugins, model.card = plugins, card
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

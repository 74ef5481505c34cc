"""card -> components -> LatentModel.  Each component comes from the plugin registry by name."""
from __future__ import annotations

import inspect
from typing import Any

from .cards import COMPONENTS, Card
from .errors import CardError, PluginError
from .model import LatentModel
from .registry import get_registry


def build_model(card: Card) -> LatentModel:
    """Assemble the model a card describes, with freshly initialised weights."""
    registry = get_registry()
    parts: dict[str, Any] = {}
    for kind in COMPONENTS:
        name, args = card.component(kind)
        try:
            component = registry.get(kind, name)
        except PluginError as e:
            raise CardError(f"{_where(card)}: field 'zoo.{kind}.name': {e}") from None
        parts[kind] = _call(component.factory, card, kind, name, args, str(component.owner))
    return LatentModel(parts["encoder"], parts["decoder"], parts["prior"],
                       data_shape=card.data_shape, latent_shape=card.latent_shape,
                       name=card.name, beta=card.beta, config=card.zoo)


def _call(factory, card: Card, kind: str, name: str, args: dict[str, Any], owner: str):
    try:
        signature = inspect.signature(factory)
        signature.bind(data_shape=card.data_shape, latent_shape=card.latent_shape, **args)
    except TypeError as e:
        raise CardError(f"{_where(card)}: field 'zoo.{kind}': {kind} {name!r} from {owner} "
                        f"does not accept these arguments: {e}") from None
    except ValueError:  # no signature (a C builtin): let the call itself report
        pass
    try:
        return factory(data_shape=card.data_shape, latent_shape=card.latent_shape, **args)
    except (ValueError, TypeError, KeyError) as e:
        raise CardError(f"{_where(card)}: field 'zoo.{kind}': {kind} {name!r} from {owner}: {e}") from e


def _where(card: Card) -> str:
    return str(card.path) if card.path else f"card {card.name!r}"

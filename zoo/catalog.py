"""Named models: the cards the plugins register, looked up by name or fnmatch pattern (as timm)."""
from __future__ import annotations

import fnmatch

from .cards import Card, read_card
from .errors import UnknownModelError
from .registry import get_registry, suggest


def list_models(pattern: str = "*") -> list[str]:
    """Names of the models whose cards are installed, filtered by an fnmatch ``pattern``."""
    return sorted(n for n in get_registry().cards if fnmatch.fnmatchcase(n, pattern))


def get_card(name: str) -> Card:
    """The validated card of model ``name``; unknown names get close suggestions."""
    entry = get_registry().cards.get(name)
    if entry is None:
        raise UnknownModelError(f"unknown model {name!r}{suggest(name, get_registry().cards)} "
                                f"(see `zoo list`)")
    return read_card(entry.path, name=name)

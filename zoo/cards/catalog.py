"""Named models: the cards the plugins register, looked up by name or fnmatch pattern (as timm).

A card whose name starts with ``_`` is a base other cards extend (``zoo.extends``), not a model."""
from __future__ import annotations

import fnmatch

from zoo.cards import Card, read_card
from zoo.errors import UnknownModelError
from zoo.registry import get_registry, suggest


def model_names() -> list[str]:
    """Every installed model name (base cards left out)."""
    return sorted(n for n in get_registry().cards if not n.startswith("_"))


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Names of the models whose cards are installed, filtered by an fnmatch ``pattern``; ``pretrained=True``
    keeps those whose weights load on this machine now without a download (packaged with the zoo, or a Hub file
    already in the Hugging Face cache: zoo.cards.listing), as timm's ``list_models``."""
    names = [n for n in model_names() if fnmatch.fnmatchcase(n, pattern)]
    if not pretrained:
        return names
    from zoo.cards.listing import weights_availability

    return [n for n in names if weights_availability(get_card(n)).here]


def get_card(name: str) -> Card:
    """The validated card of model ``name`` (or of a card file ``path/to/NAME.md``: iterate on a card
    without packaging it); unknown names get close suggestions."""
    from pathlib import Path

    if str(name).endswith(".md") and Path(name).is_file():
        return read_card(Path(name), name=Path(name).stem)
    entry = get_registry().card(name) if not str(name).rpartition(":")[2].startswith("_") else None
    if entry is None:
        failed = get_registry().failure_lines()
        hint = f"; note: {'; '.join(failed)}" if failed else ""
        raise UnknownModelError(f"unknown model {name!r}{suggest(name, model_names())} (see `zoo list`){hint}")
    return read_card(entry.path, name=entry.name)  # DIST:NAME selects; the card is NAME

"""Named models: the cards the plugins register, looked up by name (``zoo.list_models``, which filters them by
fnmatch pattern as timm and by where their weights are, is in zoo.cards.listing).

A card whose name starts with ``_`` is a base other cards extend (``zoo.extends``), not a model."""
from __future__ import annotations

from zoo.cards import Card, read_card
from zoo.errors import UnknownModelError
from zoo.registry import get_registry, suggest


def model_names() -> list[str]:
    """Every installed model name (base cards left out)."""
    return sorted(n for n in get_registry().cards if not n.startswith("_"))


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

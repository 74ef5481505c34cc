"""Cards for tests, from Python dicts: ``make_card(name, **zoo_block)`` (also the ``make_card`` fixture).

    make_card("tiny", latent={"shape": [4]}, train={"steps": 20})          # over TINY_DIGITS
    make_card("gmm5", base=None, data=..., latent=..., encoder=..., ...)    # no defaults

Values merge over ``base`` (default: :data:`TINY_DIGITS`, a 4-d MLP VAE on ``zoo:digits``) key by key
for mappings, as a card's ``zoo.extends`` does; ``metadata`` is the card's Hub metadata and ``body``
its Markdown text.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from zoo.cards import Card, parse_card
from zoo.cards.schema import merge_zoo

TINY_DIGITS: dict[str, Any] = {
    "data": {"source": "zoo:digits", "shape": [1, 8, 8]},
    "latent": {"shape": [4]},
    "encoder": {"name": "mlp", "hidden": [32]},
    "decoder": {"name": "mlp", "hidden": [32], "likelihood": "bernoulli"},
    "prior": {"name": "standard-normal"},
}


def card_markdown(name: str, *, base: dict | None = TINY_DIGITS, metadata: dict | None = None, body: str = "",
                  **zoo_block: Any) -> str:
    """The Markdown of a card: YAML front matter (``metadata`` + the ``zoo`` block) and ``body``."""
    zoo = merge_zoo(base or {}, zoo_block)
    front = {**(metadata or {}), "zoo": zoo}
    return f"---\n{yaml.safe_dump(front, sort_keys=False)}---\n{body or f'# {name}'}\n"


def make_card(name: str = "tiny", *, base: dict | None = TINY_DIGITS, metadata: dict | None = None,
              body: str = "", **zoo_block: Any) -> Card:
    """A validated Card (not registered: pass it to zoo.train / build_model directly)."""
    return parse_card(card_markdown(name, base=base, metadata=metadata, body=body, **zoo_block), name=name)


def register_card(folder: Path, name: str, zoo_block: dict[str, Any], *, base: dict | None = None,
                  metadata: dict | None = None) -> str:
    """Write ``folder/cards-NAME/NAME.md`` and register it in-process (undone by ``fresh_registry``)."""
    from hub_fixtures import register_card_folder

    cards = Path(folder) / f"cards-{name}"
    cards.mkdir(parents=True, exist_ok=True)
    (cards / f"{name}.md").write_text(card_markdown(name, base=base, metadata=metadata, **zoo_block))
    register_card_folder(cards, name)
    return name

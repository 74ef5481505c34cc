"""What a card's ``zoo.weights`` says: which file(s), and where ``zoo.load`` takes them from.

Plain reading of the card (no torch, no network), shared by the loader and by ``zoo list`` / ``zoo info``.
"""
from __future__ import annotations

from typing import Any, Mapping

from zoo.cards.spec import CardLike as Card


def weight_files(spec: Any) -> dict[str | None, str]:
    """The card's weights file(s): ``{None: file}``, or part -> file for a checkpoint in several files
    (``spec``: the typed ``card.spec.weights``, or a raw ``zoo.weights`` mapping)."""
    file = spec["file"] if isinstance(spec, Mapping) else spec.file
    return dict(file) if isinstance(file, Mapping) else {None: file}


def weights_source(card: Card, revision: str | None = None) -> str | None:
    """Where ``zoo.load`` takes a card's weights from: ``"hub"`` when the card pins a Hub revision (or ``revision``
    asks for one) or has no packaged file, ``"packaged"`` for the file shipped beside the card otherwise; None
    when the card has no weights."""
    spec = card.spec.weights
    if spec is None:
        return None
    if spec.packaged and revision is None and not (spec.repo and spec.revision):
        return "packaged"
    return "hub"

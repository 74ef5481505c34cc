"""A trained model on disk: ``model.safetensors`` + ``config.json`` + ``README.md`` (the card).

This module writes and reads those files; it builds no model.  The loader (:mod:`zoo.loading`) rebuilds the
architecture from the card read here and fills it from safetensors; nothing is unpickled.
"""
from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from zoo.store.atomic import write_atomic
from zoo.store.weights import save_weights
from zoo.cards import Card, parse_card
from zoo.cards.schema import card_from_config
from zoo.errors import CardError, WeightsError
from zoo.model import LatentModel

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"


def save_model(model: LatentModel, folder: str | Path, card: Card, *,
               weights_name: str = WEIGHTS, extra_weights: dict[str, nn.Module] | None = None) -> Path:
    """Write weights, config and card into ``folder`` (each file atomically)."""
    from zoo import __version__

    folder = Path(folder)
    for kind in ("encoder", "decoder", "prior"):
        if card.module_path(kind) is not None:  # a bring-your-own module: the card must be able to rebuild it
            from zoo.byo import check_reloadable

            check_reloadable(kind, getattr(model, kind))
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"zoo.name": card.name, "zoo.version": __version__}
    save_weights(model, folder / weights_name, meta)
    for fname, module in (extra_weights or {}).items():
        save_weights(module, folder / fname, meta)
    config = {"name": card.name, "zoo_version": __version__, "zoo": card.zoo, "metadata": card.metadata,
              "plugins": model.plugins}  # which distribution (and version) provided each component
    write_atomic(folder / CONFIG, json.dumps(config, indent=2, sort_keys=False) + "\n")
    write_atomic(folder / CARD, card.to_markdown())
    return folder


def save_pretrained_folder(model: LatentModel, folder: str | Path, *, overwrite: bool = False) -> Path:
    """``model.save_pretrained``: through the run-folder guard (zoo.store.run_lock.FolderGuard), staged beside
    ``folder`` and moved into place; a folder save_pretrained wrote before is replaced."""
    from zoo.store.run_lock import FolderGuard

    with FolderGuard(folder, kind="model", overwrite=overwrite, flag="save_pretrained:",
                     overwrite_flag="overwrite=True") as guard:
        stage = guard.stage()
        save_model(model, stage, model.card)
        return guard.commit(stage, model.card.name)


def read_folder_card(folder: str | Path) -> Card:
    """The card of a saved model: ``config.json`` if present, else ``README.md``."""
    folder = Path(folder)
    config_path, card_path = folder / CONFIG, folder / CARD
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as e:
            raise CardError(f"{config_path}: not valid JSON: {e}") from None
        body = card_path.read_text().split("\n---", 1)[-1].split("\n", 1)[-1] if card_path.is_file() else ""
        return card_from_config(config, config_path, body=body, name=folder.name)
    if card_path.is_file():
        return parse_card(card_path.read_text(), source=card_path)
    raise WeightsError(f"{folder} is not a saved model: it has neither {CONFIG} nor {CARD}")

"""Model cards: one Markdown file per named model (Hugging Face card metadata + a ``zoo:`` block).

    spec        the typed card: the ``zoo:`` block as frozen dataclasses (ZooSpec), every field's type,
                default and allowed values, and the one parse that checks them (``Card.spec``)
    schema      Card, parse_card, read_card, validate_zoo: reading a card file (``extends`` merged first)
    render      the results section of a card body
    hub_schema  the Hub metadata and ``model-index`` a card carries, and what the Hub accepts
    catalog     get_card / model_names: the cards the plugins registered, by name
    listing     list_models and what `zoo list` / `zoo info` say (where the weights load from; loader layer)
"""
from zoo.cards.hub_schema import (
    HUB_LICENSES, LIBRARY_NAME, METRICS, base_model, check_hub_metadata, dataset_revision, hub_metadata,
    model_family, model_index,
)
from zoo.cards.render import RESULTS_END, RESULTS_START, results_section, with_results_section
from zoo.cards.schema import COMPONENTS, Card, parse_card, read_card, validate_zoo
from zoo.cards.spec import ZooSpec, parse_zoo

__all__ = [
    "Card", "ZooSpec", "parse_card", "parse_zoo", "read_card", "validate_zoo", "COMPONENTS", "results_section",
    "with_results_section",
    "RESULTS_START", "RESULTS_END", "hub_metadata", "model_index", "model_family", "base_model",
    "check_hub_metadata", "dataset_revision", "HUB_LICENSES", "LIBRARY_NAME", "METRICS",
]

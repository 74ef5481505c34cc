"""Model cards: Markdown with Hugging Face YAML front matter plus a ``zoo:`` block.

The ``zoo:`` block says how to build the model (encoder, decoder, prior and their arguments),
what data it models, how to train it, where its weights live and what was measured.  The same
file, rendered with measured results, is the README.md of a trained run and of a Hub repo.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zoo.cards.spec import (  # noqa: F401 - the card format's names, kept where they were
    COMPONENTS, GRADIENTS, MODULE_FIELDS, OBJECTIVE_FIELDS, PROVENANCE_FIELDS, REQUIRED, ZOO_FIELDS, ZooSpec,
    check_metadata, normalized, parse_zoo, plain_copy,
)
from zoo.errors import CardError

# libyaml's safe loader where PyYAML was built with it (the same safe subset; the pure-Python parser took most of
# `zoo list`'s time over 45 cards), else the pure-Python one
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Card:
    """A parsed, validated model card: ``spec`` is its ``zoo`` block typed (zoo.cards.spec.ZooSpec), ``zoo`` the
    same block as the raw mapping the file holds (what is written back)."""

    name: str
    zoo: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    body: str = ""
    path: Path | None = None
    # kind -> {"name", "distribution", "version"}: who provided each component when the weights were trained
    provenance: dict[str, Any] = field(default_factory=dict)

    # -- the typed card ------------------------------------------------------------------------
    @property
    def spec(self) -> ZooSpec:
        """The ``zoo`` block as typed, frozen dataclasses (zoo.cards.spec), parsed when the card was read.

        ``zoo`` (the raw mapping) stays the card's source: a card whose ``zoo`` was replaced or changed in place
        is parsed again, so the spec never disagrees with it (and a change that breaks the card is refused here,
        naming the card and the field)."""
        cached = self.__dict__.get("_spec")
        try:
            same = cached is not None and cached[0] == self.zoo
        except Exception:  # noqa: BLE001 - a value whose == is no bool (a tensor in a module's config): parse again
            same = False
        if same:
            return cached[1]
        return self._parsed(self.zoo, self.path or f"card {self.name!r}")

    def _parsed(self, raw: dict[str, Any], source: Any, spec: ZooSpec | None = None) -> ZooSpec:
        """Cache ``spec`` (else the parse of ``raw``) as the typed view of ``raw``; its name is the card's."""
        spec = spec if spec is not None else parse_zoo(raw, source)
        if spec.name != self.name:
            spec = dataclasses.replace(spec, name=self.name)
        self.__dict__["_spec"] = (plain_copy(raw), spec)
        return spec

    # -- convenient views ----------------------------------------------------------------------
    @property
    def data_shape(self) -> tuple[int, ...]:
        return self.spec.data.shape

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self.spec.latent.shape

    @property
    def beta(self) -> float:
        return float(self.spec.objective.beta)

    def component(self, kind: str) -> tuple[str, dict[str, Any]]:
        """(registered name, or the ``module`` import path of a bring-your-own component; its arguments).
        Provenance fields (``fitted_from``) are not arguments."""
        spec = self.spec.component(kind)
        return spec.target, spec.arguments()

    def module_path(self, kind: str) -> str | None:
        """The ``"pkg.mod:ClassName"`` a bring-your-own component is imported from, or None for a registered one."""
        return self.spec.component(kind).module

    # -- writing -------------------------------------------------------------------------------
    def to_markdown(self, *, repo_id: str | None = None) -> str:
        """The card as Markdown the Hub reads: front matter (Hub metadata, ``zoo`` block, model-index) and body.

        The metadata gets the Hub defaults (``library_name: latent-zoo``, the ``latent-zoo`` and family tags);
        with measured results the body gets a results table with the commands that reproduce the numbers
        (``repo_id`` names the published model in those commands)."""
        from zoo.cards.hub_schema import hub_metadata, model_index
        from zoo.cards.render import with_results_section

        front = hub_metadata(self)
        zoo = dict(self.zoo)
        zoo["name"] = self.name
        front["zoo"] = zoo
        index = model_index(self)
        if index:
            front["model-index"] = index
        text = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=100)
        body = with_results_section(self.body, self, repo_id=repo_id)
        return f"---\n{text}---\n{body if body.startswith(chr(10)) else chr(10) + body}"

    def with_fields(self, fields: dict[str, Any]) -> "Card":
        """A copy with ``zoo`` fields set by dotted path: ``{"data.source": "zoo:digits"}`` sets one field,
        ``{"train": {...}}`` replaces a block.  The new block is checked by the typed parse (a wrong value is
        refused here, naming the card and the field)."""
        zoo = plain_copy(self.zoo)
        for path, value in fields.items():
            *parents, last = path.split(".")
            block = zoo
            for key in parents:
                if not isinstance(block.get(key), dict):
                    block[key] = {}
                block = block[key]
            block[last] = plain_copy(value)
        card = dataclasses.replace(self, zoo=zoo)
        card._parsed(zoo, self.path or f"card {self.name!r}")
        return card

    def with_results(self, results: dict[str, Any]) -> "Card":
        """A copy with ``zoo.results`` replaced; results of the wrong type are refused here, naming the field."""
        card = copy.deepcopy(self)
        card.zoo["results"] = results
        card._parsed(card.zoo, self.path or f"card {self.name!r}")
        return card


def parse_card(text: str, *, source: str | Path = "<string>", name: str | None = None) -> Card:
    """Parse and validate a card; errors name ``source`` and the field.

    ``zoo.extends: BASE`` starts from the card ``BASE`` (a file ``BASE.md`` beside this one, else a
    registered card): its metadata and ``zoo`` block are deep-merged under this card's (mappings
    merge key by key, anything else is replaced; a component whose ``name`` changes is replaced
    whole), and its body is used when this card has none.  A base card whose name starts with
    ``_`` is not a model: it need not be complete, only the cards that extend it are validated."""
    metadata, raw, body = _inherited(text, source, (name or Path(str(source)).stem,))
    check_metadata(metadata, source)
    spec = parse_zoo(raw, source)
    zoo = normalized(raw, spec)
    card_name = zoo.pop("name", None)
    if name is not None and card_name is not None and card_name != name:
        raise CardError(f"{source}: field 'zoo.name' is {card_name!r} but the card file is named {name!r}")
    final = name or card_name
    if not final:
        raise CardError(f"{source}: missing field 'zoo.name'")
    card = Card(final, zoo, metadata, body, Path(source) if source != "<string>" else None)
    card._parsed(zoo, source, spec)  # parsed once, here; Card.spec parses again only if zoo changes
    return card


def card_from_config(config: Any, source: str | Path, *, body: str = "", name: str | None = None) -> Card:
    """The card a saved model's ``config.json`` holds (``{"name", "zoo", "metadata", "plugins"}``, zoo.store), parsed
    once; ``name`` when the config names none.  Errors name ``source`` and the field path."""
    if not isinstance(config, dict) or "zoo" not in config:
        raise CardError(f"{source}: missing field 'zoo'")
    raw = config["zoo"]
    spec = parse_zoo(raw, source)
    zoo = normalized(raw, spec)
    final = zoo.pop("name", None) or config.get("name") or name
    plugins = config.get("plugins") if isinstance(config.get("plugins"), dict) else {}
    card = Card(final, zoo, config.get("metadata", {}), body, Path(source), provenance=plugins)
    card._parsed(zoo, source, spec)
    return card


def _front_matter(text: str, source: str | Path) -> tuple[dict[str, Any], str]:
    """(front matter, body) of a card's text."""
    if not text.startswith("---"):
        raise CardError(f"{source}: a card must start with YAML front matter ('---')")
    parts = text.split("\n---", 1)
    if len(parts) != 2:
        raise CardError(f"{source}: unterminated YAML front matter (no closing '---')")
    head, body = parts[0][3:], parts[1]
    body = body[body.index("\n") + 1:] if "\n" in body else ""
    try:
        front = yaml.load(head, Loader=SAFE_LOADER) or {}
    except yaml.YAMLError as e:
        raise CardError(f"{source}: invalid YAML front matter: {e}") from None
    if not isinstance(front, dict):
        raise CardError(f"{source}: front matter must be a mapping")
    if "zoo" not in front:
        raise CardError(f"{source}: missing field 'zoo' (the block that defines the model)")
    return front, body


def _inherited(text: str, source: str | Path, seen: tuple[str, ...]) -> tuple[dict, Any, str]:
    """(metadata, raw zoo block, body) of a card with its ``extends`` chain merged in, not yet validated."""
    front, body = _front_matter(text, source)
    metadata = {k: v for k, v in front.items() if k not in ("zoo", "model-index")}
    raw = front["zoo"]
    if isinstance(raw, dict) and "extends" in raw:
        path = _base_path(raw["extends"], source, seen)
        try:
            base_text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise CardError(f"{path}: cannot read card: {e.strerror}") from None
        base_meta, base_zoo, base_body = _inherited(base_text, path, (*seen, raw["extends"]))
        if not isinstance(base_zoo, dict):
            raise CardError(f"{path}: field 'zoo' must be a mapping")
        raw = merge_zoo(base_zoo, {k: v for k, v in raw.items() if k != "extends"})
        metadata = merge(base_meta, metadata)
        body = body if body.strip() else base_body
    return metadata, raw, body


def merge(base: Any, override: Any) -> Any:
    """Deep merge for card inheritance: mappings merge key by key; anything else in ``override`` wins."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = copy.deepcopy(base)
        for key, value in override.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def merge_zoo(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A ``zoo`` block over its base: :func:`merge`, except that a component (encoder, decoder, prior)
    or sampler whose ``name`` changes is replaced whole (the base's arguments belong to the base's component)."""
    out = merge(base, override)
    for key in (*COMPONENTS, "sampler"):
        own, inherited = override.get(key), base.get(key)
        if isinstance(own, dict) and isinstance(inherited, dict) and own.get("name", inherited.get("name")) != inherited.get("name"):
            out[key] = copy.deepcopy(own)
    return out


def _base_path(base: Any, source: str | Path, seen: tuple[str, ...]) -> Path:
    if not isinstance(base, str) or not base:
        raise CardError(f"{source}: field 'zoo.extends': must be the name of a card, got {base!r}")
    if base in seen:
        raise CardError(f"{source}: field 'zoo.extends': cards extend each other in a cycle: "
                        f"{' -> '.join([*seen, base])}")
    beside = Path(source).parent / f"{base}.md" if str(source) != "<string>" else None
    if beside is not None and beside.is_file():
        return beside
    from zoo.registry import get_registry

    entry = get_registry().cards.get(base)
    if entry is None:
        raise CardError(f"{source}: field 'zoo.extends': no card {base!r} beside this card or installed")
    return entry.path


def read_card(path: str | Path, *, name: str | None = None) -> Card:
    """Read a card file; a card in ``cards/`` is named after its file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CardError(f"{path}: cannot read card: {e.strerror}") from None
    return parse_card(text, source=path, name=name)


def validate_zoo(zoo: Any, source: str | Path) -> dict[str, Any]:
    """Check the ``zoo`` block (the typed parse, zoo.cards.spec.parse_zoo); return a deep copy with the shapes as
    lists of integers.  Errors name ``source`` and the field path."""
    return normalized(zoo, parse_zoo(zoo, source))

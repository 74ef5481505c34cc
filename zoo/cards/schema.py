"""Model cards: Markdown with Hugging Face YAML front matter plus a ``zoo:`` block.

The ``zoo:`` block says how to build the model (encoder, decoder, prior and their arguments),
what data it models, how to train it, where its weights live and what was measured.  The same
file, rendered with measured results, is the README.md of a trained run and of a Hub repo.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zoo.errors import CardError

# libyaml's safe loader where PyYAML was built with it (the same safe subset; the pure-Python parser took most of
# `zoo list`'s time over 45 cards), else the pure-Python one
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

COMPONENTS = ("encoder", "decoder", "prior")
ZOO_FIELDS = {"name", "description", "extends", "data", "latent", "encoder", "decoder", "prior",
              "objective", "train", "sampler", "weights", "results"}
REQUIRED = ("data", "latent", "encoder", "decoder", "prior")
DATA_FIELDS = {"source", "shape", "image_key", "revision", "config", "split", "test_split"}
WEIGHT_FIELDS = {"repo", "revision", "file", "sha256", "converter", "packaged"}
OBJECTIVE_FIELDS = {"beta", "iwae_k", "loss", "gradient", "name"}  # with a name other than elbo: + its options
GRADIENTS = ("reparam", "dreg")  # objective.gradient of the iwae_k bound
# a component spec is {name: REGISTERED, **args} or {module: "pkg.mod:ClassName", args: {...}} (bring your own);
# either may carry provenance that is not passed to the component (fitted_from: what a fitted prior was fitted on)
PROVENANCE_FIELDS = ("fitted_from",)
MODULE_FIELDS = {"module", "args", *PROVENANCE_FIELDS}
_IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.<>]*")  # <locals>: built in Python, refused on save


@dataclass
class Card:
    """A parsed, validated model card."""

    name: str
    zoo: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    body: str = ""
    path: Path | None = None
    # kind -> {"name", "distribution", "version"}: who provided each component when the weights were trained
    provenance: dict[str, Any] = field(default_factory=dict)

    # -- convenient views ----------------------------------------------------------------------
    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self.zoo["data"]["shape"])

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.zoo["latent"]["shape"])

    @property
    def beta(self) -> float:
        return float(self.zoo.get("objective", {}).get("beta", 1.0))

    def component(self, kind: str) -> tuple[str, dict[str, Any]]:
        """(registered name, or the ``module`` import path of a bring-your-own component; its arguments).
        Provenance fields (``fitted_from``) are not arguments."""
        spec = {k: v for k, v in self.zoo[kind].items() if k not in PROVENANCE_FIELDS}
        if "module" in spec:
            return spec["module"], dict(spec.get("args") or {})
        return spec.pop("name"), spec

    def module_path(self, kind: str) -> str | None:
        """The ``"pkg.mod:ClassName"`` a bring-your-own component is imported from, or None for a registered one."""
        return self.zoo[kind].get("module")

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

    def with_results(self, results: dict[str, Any]) -> "Card":
        card = copy.deepcopy(self)
        card.zoo["results"] = results
        return card


def parse_card(text: str, *, source: str | Path = "<string>", name: str | None = None) -> Card:
    """Parse and validate a card; errors name ``source`` and the field.

    ``zoo.extends: BASE`` starts from the card ``BASE`` (a file ``BASE.md`` beside this one, else a
    registered card): its metadata and ``zoo`` block are deep-merged under this card's (mappings
    merge key by key, anything else is replaced; a component whose ``name`` changes is replaced
    whole), and its body is used when this card has none.  A base card whose name starts with
    ``_`` is not a model: it need not be complete, only the cards that extend it are validated."""
    metadata, raw, body = _inherited(text, source, (name or Path(str(source)).stem,))
    zoo = validate_zoo(raw, source)
    card_name = zoo.pop("name", None)
    if name is not None and card_name is not None and card_name != name:
        raise CardError(f"{source}: field 'zoo.name' is {card_name!r} but the card file is named {name!r}")
    final = name or card_name
    if not final:
        raise CardError(f"{source}: missing field 'zoo.name'")
    return Card(final, zoo, metadata, body, Path(source) if source != "<string>" else None)


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
    """Check the ``zoo`` block's fields and types; return a deep copy."""
    def fail(fieldname: str, msg: str) -> CardError:
        return CardError(f"{source}: field 'zoo.{fieldname}': {msg}")

    if not isinstance(zoo, dict):
        raise CardError(f"{source}: field 'zoo' must be a mapping")
    zoo = copy.deepcopy(zoo)
    unknown = sorted(set(zoo) - ZOO_FIELDS)
    if unknown:
        raise fail(unknown[0], f"unknown field; allowed: {', '.join(sorted(ZOO_FIELDS))}")
    for key in REQUIRED:
        if key not in zoo:
            raise fail(key, "missing")
    data = zoo["data"]
    _check_mapping(data, "data", DATA_FIELDS, fail)
    if "source" not in data:
        raise fail("data.source", "missing (a Hub dataset id, a local path, zoo:mnist-5k or zoo:digits)")
    data["shape"] = _shape(data.get("shape"), "data.shape", fail, length=3)
    _check_mapping(zoo["latent"], "latent", {"shape"}, fail)
    zoo["latent"]["shape"] = _shape(zoo["latent"].get("shape"), "latent.shape", fail)
    for kind in COMPONENTS:
        spec = zoo[kind]
        if not isinstance(spec, dict):
            raise fail(kind, "must be a mapping with a 'name' and the component's arguments")
        if "module" in spec:
            _check_mapping(spec, kind, MODULE_FIELDS, fail)
            if not isinstance(spec["module"], str) or not _IMPORT_PATH.fullmatch(spec["module"]):
                raise fail(f"{kind}.module", f"must be an import path 'package.module:ClassName', got {spec['module']!r}")
            if not isinstance(spec.get("args", {}), dict):
                raise fail(f"{kind}.args", "must be a mapping of the module's constructor arguments")
        elif not isinstance(spec.get("name"), str) or not spec["name"]:
            raise fail(f"{kind}.name", "missing or not a string (or give 'module: package.module:ClassName')")
        if "fitted_from" in spec and not isinstance(spec["fitted_from"], dict):
            raise fail(f"{kind}.fitted_from", "must be a mapping (the run and codes the prior was fitted on)")
    if "objective" in zoo:
        named = isinstance(zoo["objective"], dict) and zoo["objective"].get("name", "elbo") != "elbo"
        # a surrogate loss the prior defines (objective.loss other than elbo) takes its own options beside it
        surrogate = isinstance(zoo["objective"], dict) and zoo["objective"].get("loss", "elbo") != "elbo"
        _check_mapping(zoo["objective"], "objective", set(zoo["objective"]) if named or surrogate else OBJECTIVE_FIELDS,
                       fail)
        name = zoo["objective"].get("name", "elbo")
        if not isinstance(name, str) or not name:
            raise fail("objective.name", f"must be the name of a registered objective (or 'elbo'), got {name!r}")
        gradient = zoo["objective"].get("gradient", "reparam")
        if not named and gradient not in GRADIENTS:
            raise fail("objective.gradient", f"must be one of {', '.join(GRADIENTS)}, got {gradient!r}")
        beta = zoo["objective"].get("beta", 1.0)
        if not isinstance(beta, (int, float)) or isinstance(beta, bool) or beta < 0:
            raise fail("objective.beta", f"must be a number >= 0, got {beta!r}")
        k = zoo["objective"].get("iwae_k", 1)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise fail("objective.iwae_k", f"must be an integer >= 1, got {k!r}")
        loss = zoo["objective"].get("loss", "elbo")
        if not isinstance(loss, str) or not loss:
            raise fail("objective.loss", f"must be a name ('elbo', or one the prior's training_loss knows), got {loss!r}")
    if "sampler" in zoo and (not isinstance(zoo["sampler"], dict) or not isinstance(zoo["sampler"].get("name"), str)):
        raise fail("sampler", "must be a mapping with the 'name' of a registered sampler and its options")
    if "train" in zoo and not isinstance(zoo["train"], dict):
        raise fail("train", "must be a mapping")
    if "weights" in zoo:
        _check_weights(zoo["weights"], fail)
    if "results" in zoo and not isinstance(zoo["results"], dict):
        raise fail("results", "must be a mapping")
    return zoo


def _check_weights(spec: Any, fail) -> None:
    """``zoo.weights``: a Hub file (repo, file, revision, sha256, converter) and/or a file shipped beside the card
    (``packaged``, sha256 required).  With both, a pinned Hub revision is preferred and the packaged file is the
    same bytes (one sha256), used when the Hub cannot be reached."""
    _check_mapping(spec, "weights", WEIGHT_FIELDS, fail)
    packaged = spec.get("packaged")
    if packaged is not None:
        parts = str(packaged).replace("\\", "/").split("/")
        if not isinstance(packaged, str) or not packaged.endswith(".safetensors") or packaged.startswith("/") \
                or ".." in parts:
            raise fail("weights.packaged", f"must be a .safetensors file relative to the card's folder, got {packaged!r}")
        if not isinstance(spec.get("sha256"), str) or not re.fullmatch(r"[0-9a-f]{64}", spec["sha256"]):
            raise fail("weights.sha256", "a packaged weights file needs its sha256 (64 hex digits)")
    if packaged is None or "repo" in spec:
        if not isinstance(spec.get("repo"), str):
            raise fail("weights.repo", "missing or not a string (or give 'packaged': a file shipped beside the card)")
        file = spec.get("file")
        several = isinstance(file, dict) and file and all(isinstance(k, str) and k and isinstance(v, str)
                                                          for k, v in file.items())
        if not isinstance(file, str) and not several:
            raise fail("weights.file", "missing, or neither a file name nor a mapping part -> file name "
                                       "(a checkpoint in several files, e.g. {vqvae: vqvae/x.safetensors, unet: ...})")
    sha = spec.get("sha256")
    if sha is not None and not isinstance(sha, (str, dict)):
        raise fail("weights.sha256", "must be a hex digest (or a mapping part -> digest for several files)")


def _check_mapping(value: Any, name: str, allowed: set[str], fail) -> None:
    if not isinstance(value, dict):
        raise fail(name, "must be a mapping")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise fail(f"{name}.{unknown[0]}", f"unknown field; allowed: {', '.join(sorted(allowed))}")


def _shape(value: Any, name: str, fail, length: int | None = None) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (not isinstance(value, (list, tuple)) or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise fail(name, f"must be a list of positive integers, got {value!r}")
    if length is not None and len(value) != length:
        raise fail(name, f"must have {length} entries (channels, height, width), got {list(value)}")
    return list(value)

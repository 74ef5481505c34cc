"""What ``zoo list`` and ``zoo info`` say about a model: where its weights come from and whether they load here, now.

A card's weights come from one of three places:

    packaged        a safetensors file shipped in the package beside the card (always loads, offline too)
    Hub REPO@REV    a file on the Hugging Face Hub at a revision (the card's pin, else ``main``)
    none            the card has no ``zoo.weights``: ``zoo train NAME`` makes them

"Here" says whether ``zoo.load(NAME)`` finds them on this machine without a download: packaged, or the Hub file in
the Hugging Face cache (``zoo download NAME`` puts it there while online).  ``zoo list --pretrained`` lists those.

The parameter count is that of the architecture the card builds (on the meta device, zoo.cards.table); it is kept
in ``$ZOO_CACHE/parameters.json`` (``~/.cache/latent-zoo``), keyed by the card's architecture and the versions of the
installed plugins, so a listing does not build every model each time.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from zoo.cards.schema import Card
from zoo.cards.spec import thaw


@dataclass(frozen=True)
class WeightsAvailability:
    """Where a card's weights come from (``source``: packaged / hub / none, ``label`` as shown), whether they load
    on this machine now without a download (``here``) and why (``note``)."""

    source: str
    label: str
    here: bool
    note: str


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Names of the models whose cards are installed, filtered by an fnmatch ``pattern``; ``pretrained=True``
    keeps those whose weights load on this machine now without a download (packaged with the zoo, or a Hub file
    already in the Hugging Face cache: :func:`weights_availability`), as timm's ``list_models``."""
    import fnmatch

    from zoo.cards.catalog import get_card, model_names

    names = [n for n in model_names() if fnmatch.fnmatchcase(n, pattern)]
    if not pretrained:
        return names
    return [n for n in names if weights_availability(get_card(n)).here]


def _cached(repo: str, file: str, revision: str) -> bool:
    """Whether ``file`` of model ``repo`` at ``revision`` is in the Hugging Face cache, read from the cache's
    documented layout (``models--ORG--NAME/refs/REV`` holds the commit, ``snapshots/COMMIT/FILE`` the file), the
    lookup of ``huggingface_hub.try_to_load_from_cache`` without importing its download stack (about 0.3 s CPU
    of every ``zoo list``, issue 22)."""
    from huggingface_hub import constants  # light: paths and flags

    from zoo.hub.client import _download_kwargs

    folder = Path(_download_kwargs(None)["cache_dir"] or constants.HF_HUB_CACHE) / ("models--" + repo.replace("/", "--"))
    ref = folder / "refs" / revision
    try:
        commit = ref.read_text().strip() if ref.is_file() else revision
    except OSError:
        return False
    return (folder / "snapshots" / commit / file).is_file()


def weights_availability(card: Card) -> WeightsAvailability:
    """Where ``zoo.load(card)`` takes the weights from and whether they are on this machine (no network used)."""
    from zoo.cards.weights_spec import weights_source

    source = weights_source(card)
    spec = card.spec.weights
    if source is None:
        return WeightsAvailability("none", "none", False, f"no weights: zoo train {card.name}")
    packaged = bool(spec.packaged) and card.path is not None and (card.path.parent / spec.packaged).is_file()
    if source == "packaged":
        if packaged:
            return WeightsAvailability("packaged", "packaged", True, "packaged")
        return WeightsAvailability("packaged", "packaged", False, "the packaged file is missing: reinstall")
    revision = str(spec.revision or "main")
    label = f"Hub {spec.repo}@{revision[:12]}"
    files = list(spec.files().values())
    if all(_cached(spec.repo, f, revision) or (spec.converter and f.endswith(".safetensors")
                                               and _cached(spec.repo, f[:-12] + ".bin", revision))
           for f in files):
        return WeightsAvailability("hub", label, True, "in the Hub cache")
    if packaged:  # the Hub file is fetched when the Hub answers; offline, the packaged copy (same sha256) loads
        return WeightsAvailability("hub", label, True, "packaged copy, used offline")
    return WeightsAvailability("hub", label, False, f"not in the cache: zoo download {card.name} (online)")


def _cache_file() -> Path:
    root = os.environ.get("ZOO_CACHE")
    if root:
        return Path(root).expanduser() / "parameters.json"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "latent-zoo" / "parameters.json"


def _architecture_key(card: Card) -> str:
    from zoo import __version__
    from zoo.registry import get_registry

    spec = card.spec
    arch = {k: thaw(dataclasses.asdict(getattr(spec, k))) for k in ("data", "latent", "encoder", "decoder", "prior",
                                                                     "objective")}
    plugins = sorted(f"{o.distribution}=={o.version}" for o in get_registry().plugins)
    text = json.dumps([arch, plugins, __version__], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def card_facts(cards: list[Card]) -> dict[str, dict]:
    """name -> ``{"parameters": count or None, "family": tag}`` of the card's architecture, through the cache file
    (module docstring): the count needs the architecture built and the family the plugin classes imported, which
    is torch; a warm cache needs neither."""
    from zoo.cards.hub_schema import model_family
    from zoo.cards.table import parameter_count

    path = _cache_file()
    try:
        cache = json.loads(path.read_text())
        cache = cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        cache = {}
    out: dict[str, dict] = {}
    changed = False
    for card in cards:
        key = f"{card.name}:{_architecture_key(card)}"
        entry = cache.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("family"), str) and "parameters" in entry:
            out[card.name] = entry
            continue
        try:
            count = parameter_count(card)
        except Exception:  # noqa: BLE001 - a card whose plugin is missing still lists, without a count
            count = None
        out[card.name] = {"parameters": count, "family": model_family(card)}
        if count is not None:  # a card that could not be built is tried again next time
            cache[key] = out[card.name]
            changed = True
    if changed:
        try:
            from zoo.store.atomic import write_atomic

            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(cache, indent=0, sort_keys=True))
        except OSError:  # a read-only cache: count again next time
            pass
    return out


def format_count(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k" if n >= 1e3 else str(n)


def listing_rows(names: list[str]) -> list[dict[str, str]]:
    """One row per model for ``zoo list``: name, family, parameters, data, weights, here."""
    from zoo.cards.catalog import get_card

    cards = [get_card(n) for n in names]
    facts = card_facts(cards)
    rows = []
    for card in cards:
        data = card.spec.data
        w = weights_availability(card)
        rows.append({"name": card.name, "family": facts[card.name]["family"],
                     "parameters": format_count(facts[card.name]["parameters"]),
                     "data": f"{data.source} {'x'.join(str(v) for v in data.shape)}", "weights": w.label,
                     "here": here_cell(w)})
    return rows


def here_cell(w: WeightsAvailability) -> str:
    """``zoo list``'s HERE column: yes / yes (cache) / no: zoo download NAME / - (no weights)."""
    if w.source == "none":
        return "-"
    if not w.here:
        return "no: " + w.note.split(": ", 1)[-1]
    return "yes" if w.note == "packaged" else f"yes ({w.note})"


def format_table(rows: list[dict[str, str]], columns: tuple[str, ...]) -> str:
    """Plain-text columns with a header line, widths fitted to the content."""
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip()]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in columns).rstrip() for r in rows]
    return "\n".join(lines)

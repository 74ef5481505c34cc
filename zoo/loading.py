"""The one loader: ``zoo.load`` turns (card, weight files) into a model, by card name, from a trained folder, or
from a Hub repo; and it provides ``LatentModel.from_pretrained`` / ``save_pretrained`` / ``push_to_hub``.

Loading is card -> components -> safetensors, nothing more:
  1. find the card (``cards/`` by name, a folder's config.json, or a Hub repo's files): zoo.cards,
     zoo.store.run_folder and zoo.hub find, move and verify the files;
  2. build encoder, decoder and prior from the plugin registry: the one assembler, zoo.assemble.build_model;
  3. fill them from safetensors (converted by a named converter if the card says so): here.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from zoo.assemble import build_model
from zoo.cards import Card
from zoo.cards.catalog import get_card
from zoo.cards.spec import WeightsSpec
from zoo.cards.weights_spec import weight_files, weights_source  # noqa: F401 - part of the loader's API
from zoo.errors import WeightsError
from zoo.model import LatentModel, install_pretrained_io

__all__ = ["LatentModel", "build", "load", "load_folder", "load_repo", "download", "resolve", "PretrainedIO"]


def build(name: str | None = None, **components: Any) -> LatentModel:
    """The model of card ``name`` with freshly initialised weights; or, without a name, a model from your own
    modules and/or registered names: ``build(encoder=..., decoder=..., prior="standard-normal",
    data_shape=..., latent_shape=...)`` (see :mod:`zoo.byo`)."""
    if name is not None and not components:
        return build_model(get_card(name))
    if name is not None:
        components["name"] = name
    from zoo.byo import build as build_modules

    return build_modules(**components)


def load(name_or_path: str | Path, *, pretrained: bool = True, revision: str | None = None,
         device: Any = None, weights: str | None = None, trust_modules: bool = False) -> LatentModel:
    """Load a named model (``"vae-mnist"``), a trained folder, or a Hub repo (``"org/name"``, ``"hf://org/name@rev"``).

    An ``"org/name"`` whose checkpoint an installed card converts (``zoo.weights.repo`` with a ``converter``, e.g.
    ``"stabilityai/sd-vae-ft-mse"``) loads that card; ``"hf://org/name"`` always means the Hub repo itself.

    ``pretrained=False`` returns the card's architecture freshly initialised.  ``weights`` picks
    a weights file in a folder or repo (e.g. ``model_raw.safetensors``).  ``trust_modules=True`` lets a card that
    names its own Python classes (``module: "pkg.mod:ClassName"``, zoo.byo) import them; without it such a card is
    refused (UntrustedCodeError), so loading a downloaded card never runs code it names."""
    kind, target = resolve(name_or_path)
    if kind == "folder":
        return load_folder(target, weights=weights, device=device, trust_modules=trust_modules)
    if kind == "hub":
        return load_repo(target, revision=revision, weights=weights, device=device, pretrained=pretrained,
                         trust_modules=trust_modules)
    card = get_card(target)
    if pretrained and card.spec.weights is not None:
        model = build_model(card, empty=True)  # every weight is filled by the (strict) load that follows
        load_card_weights(model, card, revision=revision)
    else:
        model = build_model(card)
        if pretrained:
            load_card_weights(model, card, revision=revision)
    if device is not None:
        model.to(device)
    return model.eval()



def load_folder(folder: str | Path, *, weights: str | None = None, device: Any = None,
                trust_modules: bool = False) -> LatentModel:
    """Rebuild the model saved in ``folder`` (``zoo train``, ``save_pretrained``) and load its safetensors weights
    (``trust_modules``: zoo.load).  Weights that do not fit the architecture are refused with the first offending
    keys."""
    from zoo.store.run_folder import WEIGHTS, read_folder_card
    from zoo.store.weights import load_weights, read_weights

    folder = Path(folder)
    card = read_folder_card(folder)
    model = build_model(card, empty=True, trust_modules=trust_modules)  # every weight comes from the file
    path = folder / (weights or WEIGHTS)
    load_weights(model, read_weights(path), str(path))
    results = card.spec.results
    # model.safetensors holds the EMA weights when the run kept an EMA, model_raw.safetensors the raw ones
    kind = ("raw" if (weights or WEIGHTS) == "model_raw.safetensors" or results is None
            else results.get("weights", "raw"))
    model.info.update({"weights": str(path), "source": str(folder), "weights_kind": kind})
    if device is not None:
        model.to(device)
    return model.eval()


def load_repo(uri: str, *, revision: str | None = None, weights: str | None = None, device: Any = None,
              pretrained: bool = True, trust_modules: bool = False) -> LatentModel:
    """Load a model pushed with ``zoo push`` from ``"org/name"`` or ``"hf://org/name@rev"``.

    Fetches config.json, README.md and one weights file (default ``model.safetensors``) from a single commit
    (zoo.hub.fetch_repo) and rebuilds the model from the config; ``model.info["revision"]`` is that commit. An
    explicit ``revision`` wins over the URI's ``@rev``. ``pretrained=False`` builds the architecture without
    downloading weights."""
    from zoo.hub import DEFAULT_WEIGHTS, fetch_repo, parse_hf_uri
    from zoo.store.run_folder import read_folder_card

    repo_id, uri_revision = parse_hf_uri(uri) if uri.startswith("hf://") else parse_hf_uri(f"hf://{uri}")
    rev = revision or uri_revision
    file = weights or DEFAULT_WEIGHTS
    folder, commit = fetch_repo(repo_id, revision=rev, weights=file if pretrained else None)
    if pretrained:
        model = load_folder(folder, weights=file, device=device, trust_modules=trust_modules)
    else:
        model = build_model(read_folder_card(folder), trust_modules=trust_modules)
        if device is not None:
            model.to(device)
        model.eval()
    model.info.update({"repo": repo_id, "revision": commit, "requested_revision": rev or "main",
                       "file": file if pretrained else None})
    return model


class PretrainedIO:
    """What ``LatentModel.from_pretrained`` / ``save_pretrained`` / ``push_to_hub`` run (installed into zoo.model
    when this module is imported): the file and Hub side kept out of the model class, as huggingface_hub's
    ModelHubMixin keeps it out of the models that use it."""

    def from_pretrained(self, cls: type, repo_or_path: str | Path, *, revision: str | None = None,
                        token: str | bool | None = None, cache_dir: str | None = None,
                        local_files_only: bool | None = None, force_download: bool = False, device: Any = None,
                        dtype: Any = None, weights: str | None = None, trust_modules: bool = False) -> LatentModel:
        from zoo.hub.client import hub_options

        with hub_options(token=token, cache_dir=cache_dir, local_files_only=local_files_only,
                         force_download=force_download):
            model = load(repo_or_path, revision=revision, device=device, weights=weights, trust_modules=trust_modules)
        return model.to(dtype) if dtype is not None else model

    def save_pretrained(self, model: LatentModel, folder: str | Path, *, overwrite: bool = False) -> Path:
        from zoo.store.run_folder import save_pretrained_folder

        return save_pretrained_folder(model, folder, overwrite=overwrite)

    def push_to_hub(self, model: LatentModel, repo_id: str, *, private: bool = False, revision: str | None = None,
                    create_pr: bool = False, token: str | None = None,
                    commit_message: str | None = None) -> dict[str, Any]:
        import tempfile

        from zoo.hub.publish import push

        with tempfile.TemporaryDirectory(prefix="zoo-push-model-") as tmp:
            model.save_pretrained(tmp)
            return push(tmp, repo_id, private=private, revision=revision, create_pr=create_pr, token=token,
                        commit_message=commit_message)


install_pretrained_io(PretrainedIO())

_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_FILE_SUFFIXES = (".safetensors", ".bin", ".md", ".json", ".pt", ".ckpt")


def resolve(name_or_path: str | Path) -> tuple[str, str]:
    """Where a model comes from, explicitly (as timm): ("folder", path) | ("hub", "hf://org/name[@rev]") | ("card", name).

    ``hf://org/name[@rev]`` or ``hf-hub:org/name`` is the Hub; an existing folder is a run folder; a
    registered card name is that card; ``org/name`` is a Hub repo unless it looks like a local path
    (a Path object, ``./``, ``/``, ``~``, several ``/``, a file suffix, or a first component that is a
    local folder, like ``runs/``), which must then exist: a typo is an error, not a Hub lookup."""
    from zoo.registry import get_registry

    if isinstance(name_or_path, Path):
        if name_or_path.is_dir():
            return "folder", str(name_or_path)
        raise WeightsError(f"{name_or_path}: no such run folder (a folder written by `zoo train` or "
                           f"`save_pretrained`)")
    text = str(name_or_path)
    if text.startswith("hf-hub:"):
        return "hub", "hf://" + text[len("hf-hub:"):]
    if text.startswith("hf://"):
        return "hub", text
    path = Path(text).expanduser()
    if text.endswith(".md") and path.is_file():
        return "card", text  # a card file, read by get_card
    if path.is_dir():
        return "folder", str(path)
    if text in get_registry().cards and not text.startswith("_"):
        return "card", text
    first = text.split("/", 1)[0]
    looks_local = (text.startswith((".", "/", "~", "\\")) or text.count("/") > 1 or text.endswith(_FILE_SUFFIXES)
                   or ("/" in text and Path(first).expanduser().is_dir()))
    if looks_local:
        raise WeightsError(f"{text}: no such run folder ({path.absolute()} does not exist); for a Hub repo write "
                           f"hf://{text.lstrip('./')} (names with a local-looking path are never looked up on the Hub)")
    if "/" in text and _HUB_ID.fullmatch(text.split("@", 1)[0]):
        # an upstream repo an installed card converts (e.g. stabilityai/sd-vae-ft-mse) is that card
        return ("card", named) if (named := card_for_repo(text.split("@", 1)[0])) else ("hub", "hf://" + text)
    return "card", text


def card_for_repo(repo_id: str) -> str | None:
    """The installed card that converts ``repo_id``'s checkpoint (``zoo.weights.repo`` with a ``converter``: an
    upstream repo such as ``stabilityai/sd-vae-ft-mse``, not in the zoo's own format), or None.  A repo pushed by
    ``zoo push`` and pinned in a card (no converter) stays a Hub repo.  Several cards naming it is an error
    listing them (load one by its name)."""
    from zoo.cards import read_card
    from zoo.errors import CardError, UnknownModelError
    from zoo.registry import get_registry

    matches = []
    for name, entry in sorted(get_registry().cards.items()):
        if name.startswith("_"):
            continue
        try:
            spec = read_card(entry.path, name=name).spec.weights
        except CardError:
            continue
        if spec is not None and spec.repo == repo_id and spec.converter:
            matches.append(name)
    if len(matches) > 1:
        raise UnknownModelError(f"{repo_id!r} is the weights repo of several models ({', '.join(matches)}): "
                                f"load one of them by name")
    return matches[0] if matches else None


def packaged_path(card: Card) -> Path:
    """The card's packaged weights file (``zoo.weights.packaged``, relative to the card's folder), checked
    against the card's sha256."""
    from zoo.hub import hash_file

    spec = card.spec.weights
    if card.path is None:
        raise WeightsError(f"model {card.name!r}: 'zoo.weights.packaged' is relative to the card's folder, and this "
                           f"card was not read from a file")
    path = card.path.parent / spec.packaged
    if not path.is_file():
        raise WeightsError(f"model {card.name!r}: its packaged weights {path} are missing (field 'zoo.weights.packaged' "
                           f"of {card.path}); reinstall latent-zoo, or load it with pretrained=False")
    digest = hash_file(path, "sha256")
    if digest != spec.sha256:
        raise WeightsError(f"model {card.name!r}: the packaged weights {path} have sha256 {digest}, not the card's "
                           f"{spec.sha256} ({card.path}): the file is damaged or was replaced; reinstall latent-zoo")
    return path


def load_card_weights(model: LatentModel, card: Card, *, revision: str | None = None) -> None:
    """Load the weights the card names into ``model``: the pinned Hub file (downloaded or from cache), or the
    file packaged beside the card (``zoo.weights.packaged``) when no Hub revision is pinned, or when the Hub
    cannot be reached and the packaged file is the same bytes (the card has one sha256 for both).

    A checkpoint in several files (``file: {part: path, ...}``, e.g. a latent diffusion model's ``vqvae``
    and ``unet``) is read as one state dict whose keys are prefixed ``part.``, for the card's converter."""
    from zoo.hub import HubUnreachable

    source = weights_source(card, revision)
    if source is None:
        raise WeightsError(f"model {card.name!r} has no published weights (its card has no 'zoo.weights'): "
                           f"use zoo.load({card.name!r}, pretrained=False), or train it with "
                           f"`zoo train {card.name}` and load the run folder")
    spec = card.spec.weights
    if source == "hub":
        try:
            _load_hub_weights(model, card, revision)
            return
        except HubUnreachable as e:
            if not spec.packaged or revision is not None:
                raise
            note = f"the Hub file could not be fetched ({e}); loaded the packaged copy with the same sha256"
    else:
        note = None
    _load_packaged_weights(model, card, note)


def _load_packaged_weights(model: LatentModel, card: Card, note: str | None) -> None:
    from zoo.store.weights import load_weights, read_state

    spec = card.spec.weights
    path = packaged_path(card)
    load_weights(model, read_state(path), f"{path} (packaged with {card.name!r})")
    model.info.update({"source": "packaged", "weights": str(path), "sha256": spec.sha256, "file": spec.packaged,
                       "repo": spec.repo, "revision": None, "converter": None})
    if note:
        model.info["note"] = note


def _load_hub_weights(model: LatentModel, card: Card, revision: str | None) -> None:
    from zoo.store.weights import load_weights, read_state

    spec = card.spec.weights
    fetched = _fetch_card_weights(card, revision)
    state: dict = {}
    for part, (path, _, _) in fetched.items():
        tensors = read_state(path)
        state.update(tensors if part is None else {f"{part}.{k}": v for k, v in tensors.items()})
    state = convert(state, spec.converter, card)
    commit = next(iter(fetched.values()))[1]
    single = None in fetched
    files = spec.file if single else ", ".join(f"{p}: {f}" for p, f in spec.files().items())
    load_weights(model, state, f"{spec.repo}@{commit}/{files}")
    model.info.update({"source": "hub", "repo": spec.repo, "revision": commit,
                       "requested_revision": revision or spec.revision or "main",
                       "file": spec.file if single else spec.files(), "converter": spec.converter,
                       "sha256": fetched[None][2] if single else {p: v[2] for p, v in fetched.items()},
                       "weights": str(fetched[None][0]) if single else {p: str(v[0]) for p, v in fetched.items()}})


def convert(state: dict, converter: str | None, card: Card) -> dict:
    """Map an upstream checkpoint to the model's keys with the registered converter the card names."""
    if not converter:
        return state
    from zoo.errors import PluginError
    from zoo.registry import get_registry

    try:
        entry = get_registry().get("converter", converter)
    except PluginError as e:
        raise WeightsError(f"{card.path or card.name}: field 'zoo.weights.converter': {e}") from None
    return entry.factory(state)


def _fetch_card_weights(card: Card, revision: str | None = None) -> dict[str | None, tuple[Path, str, str | None]]:
    """The card's weights file(s) from the Hub (or the cache): part -> (path, commit, the sha256 it was checked
    against); the part is None for a single file.  Every file comes from the one commit the first resolves to.

    The card's sha256 is checked when the card's own revision is loaded; another ``revision`` holds another file,
    so that one is checked against the hash the Hub advertises for it.  A converted upstream checkpoint
    (``converter`` set) named ``*.safetensors`` that the revision does not have falls back to the same name with
    ``.bin`` (older diffusers uploads), read later with ``torch.load(weights_only=True)`` and checked against the
    Hub's hash (the card's sha256 is the safetensors file's)."""
    spec = card.spec.weights
    pinned = spec.revision
    rev = revision or pinned
    own = revision is None or revision == pinned
    hashes = spec.sha256
    out: dict[str | None, tuple[Path, str, str | None]] = {}
    for part, file in spec.files().items():
        sha256 = (hashes.get(part) if isinstance(hashes, Mapping) else hashes) if own else None
        path, commit, checked = _fetch_file(spec, file, rev, sha256)
        rev = commit  # the other parts from the same commit
        out[part] = (path, commit, checked)
    return out


def _fetch_file(spec: WeightsSpec, file: str, rev: str | None, sha256: str | None) -> tuple[Path, str, str | None]:
    from zoo.hub import FileNotFound, download_file

    try:
        path, commit = download_file(spec.repo, file, revision=rev, sha256=sha256)
    except FileNotFound:
        if not (spec.converter and file.endswith(".safetensors")):
            raise
        fallback = file[: -len(".safetensors")] + ".bin"
        try:
            path, commit = download_file(spec.repo, fallback, revision=rev)
        except FileNotFound:
            raise FileNotFound(f"neither {file!r} nor {fallback!r} is in {spec.repo}@{rev or 'main'}") from None
        sha256 = None
    return path, commit, sha256


def download(name: str, *, revision: str | None = None, weights: str | None = None) -> dict[str, Any]:
    """Pre-fetch a model's files into the Hugging Face cache so that ``zoo.load`` works offline afterwards.

    ``name`` is a card name with a ``zoo.weights`` block (or the upstream repo such a card converts), or a Hub repo
    (``org/name``, ``hf://org/name@rev``).
    Returns ``{"repo", "revision" (the commit), "path", "files"}``."""
    from zoo.hub import DEFAULT_WEIGHTS, fetch_repo, parse_hf_uri

    kind, text = resolve(name)
    if kind == "folder":
        raise WeightsError(f"{text} is a local run folder: there is nothing to download")
    if kind == "hub":
        repo_id, uri_revision = parse_hf_uri(text)
        file = weights or DEFAULT_WEIGHTS
        folder, commit = fetch_repo(repo_id, revision=revision or uri_revision, weights=file)
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        return {"repo": repo_id, "revision": commit, "path": folder, "files": files}
    card = get_card(text)
    source = weights_source(card, revision)
    if source is None:
        raise WeightsError(f"model {card.name!r} has no published weights (its card has no 'zoo.weights'): "
                           f"nothing to download")
    if source == "packaged":  # shipped with the package: nothing to fetch, the file is checked
        spec = card.spec.weights
        return {"repo": spec.repo, "revision": None, "path": packaged_path(card), "source": "packaged",
                "files": [spec.packaged]}
    fetched = _fetch_card_weights(card, revision)
    spec = card.spec.weights
    paths = [v[0] for v in fetched.values()]
    return {"repo": spec.repo, "revision": next(iter(fetched.values()))[1], "source": "hub",
            "path": paths[0] if len(paths) == 1 else paths, "files": list(spec.files().values())}

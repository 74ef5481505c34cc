"""Resolving a ``--data`` spec (built-in, local path or Hub id) and loading one split of it."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import DataError
from zoo.data.embedded import _materialise, embedded_source
from zoo.data.hf import _datasets, _remember
from zoo.data.splits import CARVED, _fallback_test, _pick_split

if TYPE_CHECKING:  # pragma: no cover
    import datasets

_FILE_SUFFIXES = {".parquet", ".arrow", ".csv", ".json", ".jsonl", ".png", ".jpg", ".jpeg",
                  ".npy", ".npz", ".zip", ".gz", ".tar"}
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def split_label(spec: str, split: str) -> str:
    """How ``split`` of ``spec`` was made: the data set's own split, a fixed carve of an embedded set, or
    the fixed 10% of 'train' this project holds out where a source has no 'test' split."""
    if spec.startswith("zoo:"):
        return embedded_source(spec[4:]).split_label(split)
    return CARVED.get(spec, split) if split == "test" else split


def _resolve(spec: Any) -> tuple[str, Any]:
    """('builtin', EmbeddedDataset) | ('local', Path) | ('hub', str)."""
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"--data {spec!r}: expected a string (zoo:NAME, a Hub id owner/name, "
                        "or a local path)")
    if spec.startswith("zoo:"):
        return "builtin", embedded_source(spec[4:])
    path = Path(spec).expanduser()
    if path.exists():
        return "local", path
    looks_like_path = (spec.startswith((".", "/", "~", "\\")) or spec.count("/") != 1
                       or Path(spec).suffix.lower() in _FILE_SUFFIXES)
    if _HUB_ID.fullmatch(spec) and not looks_like_path:
        return "hub", spec
    raise DataError(f"--data {spec!r}: no such file or directory ({path.absolute()}); it is not a "
                    "built-in dataset (zoo:mnist-5k, zoo:digits) or a Hub id (owner/name) either")


def _hub_error(spec: str, split: str, revision: str | None, e: BaseException) -> DataError:
    datasets = _datasets()
    offline = bool(getattr(datasets.config, "HF_HUB_OFFLINE", False))
    where = f"split {split!r}" + (f", revision {revision!r}" if revision else "")
    msg = f"--data {spec!r}: could not load the Hub dataset ({where}): {type(e).__name__}: {e}. "
    if offline:
        msg += ("Offline mode is on (HF_DATASETS_OFFLINE / HF_HUB_OFFLINE) and the dataset is not in "
                "the local Hugging Face cache: this machine may be offline; load it once with network "
                "access, or use a local copy (a parquet file or save_to_disk folder).")
    else:
        msg += ("The id or revision may be wrong, the dataset private or gated (log in with "
                "`hf auth login`), or this machine may be offline (set HF_DATASETS_OFFLINE=1 to use "
                "only the local cache without network retries).")
    return DataError(msg)


def _load_local_dict(path: Path, spec: str, streaming: bool = False) -> Any:
    """Every split of a local source, as a DatasetDict (IterableDatasetDict if streaming)."""
    datasets = _datasets()
    try:
        if path.is_file():
            if path.suffix.lower() != ".parquet":
                raise DataError(f"--data {spec!r}: {path} is not a .parquet file (a local source must "
                                "be a parquet file, a folder of parquet files, an image folder or a "
                                "save_to_disk folder)")
            return datasets.load_dataset("parquet", data_files={"train": str(path)},
                                         streaming=streaming)
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            obj = datasets.load_from_disk(str(path))
            if isinstance(obj, datasets.Dataset):
                obj = datasets.DatasetDict({"train": obj})
            if streaming:
                obj = datasets.IterableDatasetDict({k: v.to_iterable_dataset() for k, v in obj.items()})
            return obj
        if any(path.rglob("*.parquet")):
            return datasets.load_dataset("parquet", data_dir=str(path), streaming=streaming)
        return datasets.load_dataset("imagefolder", data_dir=str(path), streaming=streaming)
    except DataError:
        raise
    except Exception as e:  # datasets raises many kinds (FileNotFoundError, ValueError, ArrowInvalid…)
        raise DataError(f"--data {spec!r}: cannot load {path} ({type(e).__name__}: {e}); expected a "
                        "parquet file or folder, an image folder (class_name/*.png) or a "
                        "save_to_disk folder") from e


def _load_local(path: Path, spec: str, split: str, streaming: bool) -> Any:
    return _pick_split(_load_local_dict(path, spec, streaming), split, spec, streaming)


def _load_hub(spec: str, split: str, revision: str | None, streaming: bool, config: str | None = None) -> Any:
    datasets = _datasets()
    try:
        named = {"name": config} if config else {}
        return datasets.load_dataset(spec, **named, split=split, revision=revision, streaming=streaming)
    except ValueError as e:
        if "unknown split" not in str(e).lower():
            raise _hub_error(spec, split, revision, e) from e
        if split != "test":
            raise DataError(f"--data {spec!r} has no split {split!r} ({e})") from e
        if streaming:
            raise DataError(f"--data {spec!r} has no 'test' split; a held-out part of 'train' cannot "
                            "be carved from a stream: use streaming=False") from e
        try:
            train = datasets.load_dataset(spec, **named, split="train", revision=revision)
        except Exception as e2:
            raise _hub_error(spec, "train", revision, e2) from e2
        return _fallback_test(train, spec)
    except Exception as e:
        raise _hub_error(spec, split, revision, e) from e


def load_dataset(spec: str, split: str = "train", *, image_key: str | None = None,
                 revision: str | None = None, streaming: bool = False, config: str | None = None
                 ) -> "datasets.Dataset | datasets.IterableDataset":
    """Load one split of a data source as a Hugging Face ``Dataset`` (``IterableDataset`` if streaming).

    ``spec`` is ``zoo:mnist-5k``, ``zoo:digits``, a Hub id (``owner/name``) or a local path (see
    the module docstring).  ``image_key`` names the image column (default: the first
    ``datasets.Image`` feature); ``revision`` and ``config`` (a Hub dataset's configuration, the
    ``name`` argument of ``datasets.load_dataset``; ``--data-config``) apply to Hub datasets only.  Raises
    :class:`DataError` naming the spec, the path or the field on any failure.
    """
    kind, target = _resolve(spec)
    spec = str(spec)
    if config is not None and kind != "hub":
        raise DataError(f"--data {spec!r}: --data-config applies to Hub datasets only")
    if kind == "builtin":
        if revision is not None:
            raise DataError(f"--data {spec!r}: revision= applies to Hub datasets only")
        if split not in target.splits:
            raise DataError(f"--data {spec!r} has no split {split!r}; available: {list(target.splits)}")
        datasets = _datasets()
        root = _materialise(target)
        try:
            ds = datasets.load_from_disk(str(root / "dataset" / split))
        except Exception as e:
            raise DataError(f"--data {spec!r}: the data cache {root} is unreadable ({e}); delete it "
                            "to rebuild") from e
        if streaming:
            ds = ds.to_iterable_dataset()
    elif kind == "local":
        if revision is not None:
            raise DataError(f"--data {spec!r}: revision= applies to Hub datasets only")
        ds = _load_local(target, spec, split, streaming)
    else:
        ds = _load_hub(target, split, revision, streaming, config)
    if image_key is not None:
        features = getattr(ds, "features", None)
        if features is not None and image_key not in features:
            raise DataError(f"--data {spec!r}: no column {image_key!r} (image_key); columns: "
                            f"{list(features)}")
    _remember(ds, spec, image_key)
    return ds


def resolve_commit(spec: str, revision: str | None = None) -> str | None:
    """The commit sha of a Hub dataset at ``revision``: the revision itself if it is a sha, else what the local
    Hugging Face cache recorded for it (works offline), else the Hub's answer; None when neither knows."""
    import re as _re

    if not _HUB_ID.fullmatch(str(spec)) or Path(str(spec)).exists():
        return None
    if revision and _re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    from huggingface_hub import constants

    ref = Path(constants.HF_HUB_CACHE) / f"datasets--{spec.replace('/', '--')}" / "refs" / (revision or "main")
    try:
        sha = ref.read_text().strip()
        if _re.fullmatch(r"[0-9a-f]{40}", sha):
            return sha
    except OSError:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"} or constants.HF_HUB_OFFLINE:
        return None
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(spec, revision=revision).sha
    except Exception:  # noqa: BLE001 - unreachable or unknown: the caller records no commit
        return None


def card_source_options(spec: str, data: dict[str, Any], image_key: str | None = None) -> dict[str, Any]:
    """``image_key`` / ``revision`` from a card's ``zoo.data`` block (the typed ``card.spec.data``, or the raw
    mapping a model's config holds), when ``spec`` is the card's own source; an explicit ``image_key``
    (``--image-key``) wins for any source."""
    get = data.get if isinstance(data, dict) else (lambda key: getattr(data, key, None))
    options = ({k: get(k) for k in ("image_key", "revision", "config") if get(k)}
               if spec == get("source") else {})
    if image_key:
        options["image_key"] = image_key
    return options

""":func:`load_tensors`: one split of a source as a uint8 tensor, memoised in this process."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import DataError
from zoo.data.embedded import _materialise, data_cache_dir
from zoo.data.images import CONVERT_HINT, _fmt, to_tensor
from zoo.data.sources import _resolve, load_dataset

if TYPE_CHECKING:  # pragma: no cover
    import torch

_MEMO: dict[tuple, Any] = {}
_MEMO_LOCK = threading.Lock()


def clear_memo() -> None:
    """Forget the tensors :func:`load_tensors` kept in memory (the on-disk cache stays)."""
    with _MEMO_LOCK:
        _MEMO.clear()


def _stamp(path: Path) -> tuple:
    """Changes when a local source changes (its own mtime and its direct entries')."""
    try:
        st = path.stat()
        entries = sorted((p.name, p.stat().st_mtime_ns) for p in path.iterdir()) if path.is_dir() else ()
        return (str(path.resolve()), st.st_mtime_ns, st.st_size, tuple(entries))
    except OSError:
        return (str(path),)


def load_tensors(spec: str, split: str = "train", *, image_key: str | None = None,
                 revision: str | None = None, shape: tuple[int, int, int] | None = None,
                 convert: bool = False, config: str | None = None) -> "torch.Tensor":
    """``to_tensor(load_dataset(spec, split))``, memoised: the same arguments return the same tensor.

    Built-in datasets read their cached ``<split>.npy`` (no image decoding).  A Hub dataset is decoded
    once per dataset commit and image settings, into ``$ZOO_CACHE/data/hub/ORG--NAME/COMMIT/...npy``
    (a persistent decoded cache, written atomically), and read from there afterwards.  The tensor is
    shared between callers: treat it as read-only (``.clone()`` before changing it in place).
    """
    import torch

    kind, target = _resolve(spec)
    spec = str(spec)
    if config is not None and kind != "hub":  # a local folder or built-in has no configurations: never ignored
        raise DataError(f"--data {spec!r}: --data-config {config!r} applies to Hub datasets only; this is a "
                        f"{'local folder or file' if kind == 'local' else 'built-in dataset'}")
    shape_key = tuple(int(s) for s in shape) if shape is not None else None
    stamp = _stamp(target) if kind == "local" else (str(data_cache_dir()) if kind == "builtin" else ())
    key = (kind, spec, split, image_key, revision, shape_key, bool(convert), stamp, config)
    with _MEMO_LOCK:
        hit = _MEMO.get(key)
    if hit is not None:
        return hit
    if kind == "builtin" and not convert and revision is None and image_key in (None, "image"):
        if split not in target.splits:
            raise DataError(f"--data {spec!r} has no split {split!r}; available: {list(target.splits)}")
        root = _materialise(target)
        expected = (target.splits[split], *target.shape)
        arr = _read_cached(root / f"{split}.npy", expected)
        if arr is None:  # truncated, pickled, another shape: rebuilt from the embedded data, said aloud
            _warn_damaged(spec, root / f"{split}.npy")
            (root / "meta.json").unlink(missing_ok=True)
            root = _materialise(target)
            arr = _read_cached(root / f"{split}.npy", expected)
            if arr is None:
                raise DataError(f"--data {spec!r}: the rebuilt cache {root / (split + '.npy')} is still unreadable; "
                                f"delete {root} (or set ZOO_CACHE to another folder)")
        if shape_key is not None and shape_key != target.shape:
            hint = f" (to convert between grayscale and RGB: {CONVERT_HINT})" \
                if shape_key[1:] == target.shape[1:] else ""
            raise DataError(f"--data {spec!r}: the images are {_fmt(target.shape)} but the expected "
                            f"shape is {_fmt(shape_key)}; images are never resized{hint}")
        tensor = torch.from_numpy(arr)
    elif kind == "hub":
        tensor = _hub_tensors(spec, split, image_key, revision, shape_key, convert, config)
    else:
        tensor = to_tensor(load_dataset(spec, split, image_key=image_key, revision=revision),
                           image_key=image_key, shape=shape_key, convert=convert)
    with _MEMO_LOCK:
        return _MEMO.setdefault(key, tensor)


def _hub_tensors(spec: str, split: str, image_key: str | None, revision: str | None, shape_key, convert: bool,
                 config: str | None) -> "torch.Tensor":
    """A Hub split as uint8 tensors through the persistent decoded cache (keyed by the dataset commit)."""
    import torch

    from zoo.data.sources import resolve_commit
    from zoo.store.atomic import save_atomic

    def cache_file(commit: str) -> Path:
        shape = "x".join(map(str, shape_key)) if shape_key else "any"
        name = f"{split}-{image_key or 'image'}-{shape}-{int(convert)}.npy"
        return data_cache_dir() / "hub" / spec.replace("/", "--") / commit / (config or "default") / name

    commit = resolve_commit(spec, revision)
    if commit is not None and cache_file(commit).is_file():
        arr = _read_cached(cache_file(commit), None)
        if arr is not None:
            return torch.from_numpy(arr)
        _warn_damaged(spec, cache_file(commit))
        cache_file(commit).unlink(missing_ok=True)  # damaged: decode again
    tensor = to_tensor(load_dataset(spec, split, image_key=image_key, revision=revision, config=config),
                       image_key=image_key, shape=shape_key, convert=convert)
    commit = commit or resolve_commit(spec, revision)  # the download has recorded it in the HF cache
    if commit is not None:
        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.save(f, tensor.numpy())

        save_atomic(cache_file(commit), write)
    return tensor


def _read_cached(path: Path, shape: tuple | None) -> "np.ndarray | None":
    """A decoded-data cache file as uint8 (never unpickled), or None when it is damaged: truncated, not an
    .npy, pickled objects, another dtype or shape."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or (shape is not None and arr.shape != tuple(shape)):
        return None
    return arr


def _warn_damaged(spec: str, path: Path) -> None:
    import warnings

    warnings.warn(f"--data {spec!r}: the decoded-data cache {path} is damaged (truncated, pickled or of another "
                  f"shape); rebuilding it", UserWarning, stacklevel=3)

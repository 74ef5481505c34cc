""":func:`load_tensors`: one split of a source as a uint8 tensor, memoised in this process."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import DataError
from zoo.data.embedded import _materialise, data_cache_dir
from zoo.data.images import _fmt, to_tensor
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
                 convert: bool = False) -> "torch.Tensor":
    """``to_tensor(load_dataset(spec, split))``, memoised: the same arguments return the same tensor.

    Built-in datasets read their cached ``<split>.npy`` (no image decoding).  The tensor is shared
    between callers: treat it as read-only (``.clone()`` before changing it in place).
    """
    import torch

    kind, target = _resolve(spec)
    spec = str(spec)
    shape_key = tuple(int(s) for s in shape) if shape is not None else None
    stamp = _stamp(target) if kind == "local" else (str(data_cache_dir()) if kind == "builtin" else ())
    key = (kind, spec, split, image_key, revision, shape_key, bool(convert), stamp)
    with _MEMO_LOCK:
        hit = _MEMO.get(key)
    if hit is not None:
        return hit
    if kind == "builtin" and not convert and revision is None and image_key in (None, "image"):
        if split not in target.splits:
            raise DataError(f"--data {spec!r} has no split {split!r}; available: {list(target.splits)}")
        root = _materialise(target)
        arr = np.load(root / f"{split}.npy")
        if arr.shape != (target.splits[split], *target.shape) or arr.dtype != np.uint8:
            raise DataError(f"--data {spec!r}: the cached {root / (split + '.npy')} is damaged "
                            f"(shape {arr.shape}); delete {root} to rebuild")
        if shape_key is not None and shape_key != target.shape:
            hint = " (pass convert=True to convert between grayscale and RGB)" \
                if shape_key[1:] == target.shape[1:] else ""
            raise DataError(f"--data {spec!r}: the images are {_fmt(target.shape)} but the expected "
                            f"shape is {_fmt(shape_key)}; images are never resized{hint}")
        tensor = torch.from_numpy(arr)
    else:
        tensor = to_tensor(load_dataset(spec, split, image_key=image_key, revision=revision),
                           image_key=image_key, shape=shape_key, convert=convert)
    with _MEMO_LOCK:
        return _MEMO.setdefault(key, tensor)

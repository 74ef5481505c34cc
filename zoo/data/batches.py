""":func:`iterate_batches`: batches of rows from tensors, a map-style dataset or a stream."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from zoo.errors import DataError
from zoo.data.hf import _ORIGIN, _datasets, _name_of
from zoo.data.images import _Converter, _image_column, _open_cell, to_tensor

if TYPE_CHECKING:  # pragma: no cover
    import torch


def iterate_batches(data: Any, batch_size: int, *, shuffle: bool = False,
                    generator: "torch.Generator | None" = None, drop_last: bool = False,
                    image_key: str | None = None, shape: tuple[int, int, int] | None = None,
                    convert: bool = False, buffer_size: int = 1000,
                    keep: tuple[int, int] | None = None) -> Iterator[Any]:
    """Yield batches of rows, each row once per pass.

    ``keep=(lo, hi)`` (streams): decode and yield only rows lo..hi-1 of every batch (one process's shard
    of a global batch: the other processes' rows are never decoded here).

    ``data`` is a tensor [N, ...] (batches are ``data[idx]``; with ``shuffle`` ``idx`` comes from
    ``torch.randperm(N, generator=generator)``, so a seeded generator reproduces the order), a
    tuple/list of tensors with the same N (yields tuples, indexed alike), a map-style ``Dataset``
    (converted once with :func:`to_tensor`), or a streaming ``IterableDataset``, whose images are
    converted on the fly into uint8 batches [B, C, H, W] (``shuffle`` then uses the stream's
    buffered shuffle, seeded from ``generator``).  Unshuffled tensor batches are views of ``data``.
    """
    import torch

    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
    datasets = _datasets() if not isinstance(data, (torch.Tensor, tuple, list)) else None
    if datasets is not None and isinstance(data, datasets.IterableDataset):
        return _iterate_stream(data, batch_size, shuffle=shuffle, generator=generator,
                               drop_last=drop_last, image_key=image_key, shape=shape,
                               convert=convert, buffer_size=buffer_size, keep=keep)
    if datasets is not None and isinstance(data, datasets.Dataset):
        data = to_tensor(data, image_key=image_key, shape=shape, convert=convert)
    if isinstance(data, (tuple, list)):
        tensors = tuple(data)
        if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
            raise DataError("iterate_batches: a tuple/list must hold tensors")
        if len({len(t) for t in tensors}) != 1:
            raise DataError(f"iterate_batches: the tensors have different lengths "
                            f"{[len(t) for t in tensors]}")
        return _iterate_tensors(tensors, True, batch_size, shuffle, generator, drop_last)
    if isinstance(data, torch.Tensor):
        if data.dim() == 0:
            raise DataError("iterate_batches: a 0-d tensor has no rows")
        return _iterate_tensors((data,), False, batch_size, shuffle, generator, drop_last)
    raise DataError(f"iterate_batches: expected a tensor, tensors, a datasets.Dataset or an "
                    f"IterableDataset, got {type(data).__name__}")


def _iterate_tensors(tensors: tuple, as_tuple: bool, batch_size: int, shuffle: bool,
                     generator: Any, drop_last: bool) -> Iterator[Any]:
    import torch

    n = len(tensors[0])
    stop = n - n % batch_size if drop_last else n
    perm = torch.randperm(n, generator=generator, device="cpu") if shuffle else None
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, n)
        if perm is None:
            batch = tuple(t[start:end] for t in tensors)
        else:
            idx = perm[start:end]
            batch = tuple(t[idx.to(t.device)] if t.device.type != "cpu" else t[idx] for t in tensors)
        yield batch if as_tuple else batch[0]


def _rows(ds: Any, name: str) -> Iterator[tuple[int, Any]]:
    """(row, example) of a stream; a row the stream itself cannot read is a DataError naming it."""
    it = iter(ds)
    row = 0
    while True:
        try:
            example = next(it)
        except StopIteration:
            return
        except DataError:
            raise
        except Exception as e:  # noqa: BLE001 - datasets / PIL / arrow errors of a damaged stream
            raise DataError(f"{name}: cannot read row {row} of the stream ({type(e).__name__}: {e})") from e
        yield row, example
        row += 1


def _iterate_stream(ds: Any, batch_size: int, *, shuffle: bool, generator: Any, drop_last: bool,
                    image_key: str | None, shape: Any, convert: bool, buffer_size: int,
                    keep: tuple[int, int] | None = None) -> Iterator[Any]:
    import torch
    from PIL import Image

    name = _name_of(ds)
    if image_key is None:
        try:
            image_key = (_ORIGIN.get(ds) or (None, None))[1]
        except TypeError:
            image_key = None
    features = getattr(ds, "features", None)
    key = _image_column(features, image_key, name) if (features is not None or image_key) else None
    feature_mode = getattr(features[key], "mode", None) if features is not None and key else None
    if shuffle:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        ds = ds.shuffle(seed=seed, buffer_size=buffer_size)
    conv = _Converter(name, shape, convert, feature_mode)
    datasets = _datasets()
    if features is not None and key is not None and isinstance(features[key], datasets.Image):
        # decode here, not inside the stream's iterator, so a corrupt image is named with its file
        ds = ds.cast_column(key, datasets.Image(decode=False))
    lo, hi = keep if keep is not None else (0, batch_size)
    batch: list[np.ndarray] = []
    position = 0  # of the row within its batch
    for row, example in _rows(ds, name):
        if key is None:  # undeclared features: the first PIL image in the example
            key = next((k for k, v in example.items() if isinstance(v, Image.Image)), None)
            if key is None:
                raise DataError(f"{name}: no image in the first example (columns {list(example)}); "
                                "pass image_key= (--image-key on the command line)")
        if lo <= position < hi:
            batch.append(conv(_open_cell(example[key], name, row), row))
        position += 1
        if position == batch_size:
            yield torch.from_numpy(np.stack(batch))
            batch, position = [], 0
    if batch and not drop_last:
        yield torch.from_numpy(np.stack(batch))

"""Images -> uint8 arrays: the image column, the PIL mode and shape rules, and :func:`to_tensor`."""
from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import DataError
from zoo.data.hf import _ORIGIN, _datasets, _name_of

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    import torch

# where converting image modes is offered (no zoo command converts: its images are read as they are)
CONVERT_HINT = ("in Python, zoo.data.load_tensors(..., convert=True) or zoo.data.to_tensor(..., convert=True); the zoo "
                "commands read images as they are, so convert the files for them")

_MODE_CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4}
_CHANNEL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "La"}


def _image_column(features: Any, image_key: str | None, name: str) -> str:
    datasets = _datasets()
    if features is None:
        raise DataError(f"{name}: the dataset does not declare its features; pass image_key= "
                        f"(--image-key on the command line)")
    if image_key is not None:
        if image_key not in features:
            raise DataError(f"{name}: no column {image_key!r} (image_key); columns: {list(features)}")
        return image_key
    for key, feature in features.items():
        if isinstance(feature, datasets.Image):
            return key
    raise DataError(f"{name}: no image column (a feature of type datasets.Image) among "
                    f"{list(features)}; pass image_key= (--image-key on the command line) to name the column that "
                    f"holds the pixels")


def _fmt(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape) + " (C,H,W)"


class _Converter:
    """Turns PIL images into uint8 arrays [C, H, W] of one fixed shape, by the rules of to_tensor."""

    def __init__(self, name: str, shape: tuple[int, int, int] | None, convert: bool,
                 feature_mode: str | None = None):
        if shape is not None:
            shape = tuple(int(s) for s in shape)
            if len(shape) != 3 or shape[0] not in _CHANNEL_MODES or min(shape) <= 0:
                raise DataError(f"{name}: shape must be (C, H, W) with C in 1, 3, 4; got {shape}")
        self.name, self.shape, self.convert, self.feature_mode = name, shape, convert, feature_mode
        self.mode: str | None = None
        self.chw: tuple[int, int, int] | None = None

    def _first(self, img: Any, row: int) -> None:
        mode = img.mode
        want_c = self.shape[0] if self.shape else None
        if self.convert:
            if want_c is not None:
                target = _CHANNEL_MODES[want_c]
            elif mode in _MODE_CHANNELS:
                target = mode
            else:
                target = "L" if mode in _GRAY_MODES else "RGB"
        else:
            if mode not in _MODE_CHANNELS:
                hint = "L" if mode in _GRAY_MODES else "RGB"
                raise DataError(f"{self.name}: image {row} has PIL mode {mode!r}; only L, RGB and RGBA "
                                f"are read as they are: convert them to {hint} ({CONVERT_HINT})")
            target = mode
        chw = (_MODE_CHANNELS[target], img.height, img.width)
        if self.shape is not None and chw != self.shape:
            hint = ""
            if chw[1:] == self.shape[1:] and not self.convert:
                hint = f" (to convert between grayscale, RGB and RGBA: {CONVERT_HINT})"
            raise DataError(f"{self.name}: the images are {_fmt(chw)} but the expected shape is "
                            f"{_fmt(self.shape)}; images are never resized{hint}")
        self.mode, self.chw = target, chw

    def __call__(self, img: Any, row: int) -> np.ndarray:
        if self.feature_mode and img.mode != self.feature_mode:  # what datasets' Image(mode=) does
            img = img.convert(self.feature_mode)
        if self.mode is None:
            self._first(img, row)
        if img.mode != self.mode:
            if not self.convert:
                raise DataError(f"{self.name}: image {row} has PIL mode {img.mode!r} but image 0 has "
                                f"{self.mode!r}; convert all to {self.mode} ({CONVERT_HINT})")
            img = img.convert(self.mode)
        if (img.height, img.width) != self.chw[1:]:
            raise DataError(f"{self.name}: image {row} is {img.height}x{img.width} but the others are "
                            f"{self.chw[1]}x{self.chw[2]}; images are never resized")
        a = np.asarray(img, dtype=np.uint8)
        return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def _open_cell(cell: Any, name: str, row: int) -> Any:
    from PIL import Image

    if isinstance(cell, Image.Image):
        return cell
    try:
        if isinstance(cell, dict):
            if cell.get("bytes") is not None:
                img = Image.open(io.BytesIO(cell["bytes"]))
            elif cell.get("path"):
                img = Image.open(cell["path"])
            else:
                raise DataError(f"{name}: image {row} is empty (no bytes, no path)")
        elif isinstance(cell, (bytes, bytearray)):
            img = Image.open(io.BytesIO(cell))
        elif cell is None:
            raise DataError(f"{name}: image {row} is missing (None)")
        else:
            raise DataError(f"{name}: image {row} is a {type(cell).__name__}, not an image")
        img.load()
    except DataError:
        raise
    except Exception as e:  # PIL.UnidentifiedImageError, truncated files, missing paths
        where = cell.get("path") if isinstance(cell, dict) and cell.get("path") else f"image {row}"
        raise DataError(f"{name}: cannot decode {where} ({type(e).__name__}: {e})") from e
    return img


PARALLEL_MIN = 20_000  # images from which decoding uses worker processes


def decode_workers() -> int:
    """Worker processes for image decoding: ``ZOO_DECODE_WORKERS``, else up to 8 of the CPU cores."""
    import os

    value = os.environ.get("ZOO_DECODE_WORKERS")
    return max(1, int(value)) if value else max(1, min(8, os.cpu_count() or 1))


def _decode_chunk(conv: "_Converter", cells: list, name: str, start: int) -> np.ndarray:
    return np.stack([conv(_open_cell(cell, name, start + j), start + j) for j, cell in enumerate(cells)])


def _decode_images(ds: Any, key: str, name: str, shape: Any, convert: bool,
                   chunk: int = 4096) -> np.ndarray:
    feature = ds.features[key]
    conv = _Converter(name, shape, convert, getattr(feature, "mode", None))
    table_view = ds.select_columns([key]).with_format("arrow")
    n = len(ds)
    workers = decode_workers()
    if n >= PARALLEL_MIN and workers > 1:
        return _decode_parallel(table_view, key, name, conv, n, chunk, workers)
    out: np.ndarray | None = None
    for start in range(0, n, chunk):
        cells = table_view[start:start + chunk].column(key).to_pylist()
        for j, cell in enumerate(cells):
            a = conv(_open_cell(cell, name, start + j), start + j)
            if out is None:
                out = np.empty((n, *a.shape), dtype=np.uint8)
            out[start + j] = a
    assert out is not None
    return out


def _decode_parallel(table_view: Any, key: str, name: str, conv: "_Converter", n: int, chunk: int,
                     workers: int) -> np.ndarray:
    """Decode in worker processes (a large data set must not make the GPU wait on one core): the first image
    fixes the mode and shape in this process, then chunks go to ``workers`` processes."""
    from concurrent.futures import ProcessPoolExecutor

    first = conv(_open_cell(table_view[0:1].column(key).to_pylist()[0], name, 0), 0)
    out = np.empty((n, *first.shape), dtype=np.uint8)
    starts = list(range(0, n, chunk))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_decode_chunk, conv, table_view[s:s + chunk].column(key).to_pylist(), name, s)
                   for s in starts]
        for s, future in zip(starts, futures):
            block = future.result()
            out[s:s + len(block)] = block
    return out


def _array_column(ds: Any, key: str, name: str, shape: Any) -> np.ndarray:
    """A column of pixel arrays (Array2D/3D, nested lists, flat rows) as uint8 [N, C, H, W]."""
    a = ds.with_format("numpy", columns=[key])[:][key]
    if isinstance(a, np.ndarray) and a.dtype == object:
        try:
            a = np.stack(list(a))
        except ValueError as e:
            raise DataError(f"{name}: column {key!r} holds arrays of different shapes") from e
    a = np.asarray(a)
    if a.ndim == 2 and shape is not None and a.shape[1] == int(np.prod(shape)):
        a = a.reshape(len(a), *shape)
    elif a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[1] not in _CHANNEL_MODES and a.shape[-1] in _CHANNEL_MODES:
        a = a.transpose(0, 3, 1, 2)
    elif a.ndim != 4:
        raise DataError(f"{name}: column {key!r} holds arrays of shape {a.shape[1:]}, not images "
                        "(H,W), (C,H,W) or (H,W,C)")
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.integer) or a.size and (a.min() < 0 or a.max() > 255):
            lo, hi = (a.min(), a.max()) if a.size else (0, 0)
            raise DataError(f"{name}: column {key!r} holds {a.dtype} values in {lo}..{hi}; expected "
                            "integer pixels in 0..255")
        a = a.astype(np.uint8)
    if shape is not None and tuple(a.shape[1:]) != tuple(shape):
        raise DataError(f"{name}: the images are {_fmt(a.shape[1:])} but the expected shape is "
                        f"{_fmt(tuple(shape))}; images are never resized")
    return np.ascontiguousarray(a)


def to_tensor(ds: "datasets.Dataset", *, image_key: str | None = None,
              shape: tuple[int, int, int] | None = None, convert: bool = False) -> "torch.Tensor":
    """All images of a map-style dataset as one uint8 tensor [N, C, H, W], decoded once.

    PIL mode "L" gives C=1, "RGB" C=3, "RGBA" C=4.  If ``shape`` (C, H, W) is given the images must
    have it exactly, else :class:`DataError` names the dataset and both shapes: images are never
    resized.  Modes are never converted implicitly: with ``convert=True`` every image is converted
    to the channels of ``shape`` (``RGBA`` -> ``RGB`` drops alpha) or, without ``shape``, to the
    first image's mode (other PIL modes go to "L" or "RGB").  A column of uint8 arrays (not a
    ``datasets.Image``) is accepted when named by ``image_key``.
    """
    import torch

    datasets = _datasets()
    name = _name_of(ds)
    if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        raise DataError(f"{name}: to_tensor needs one split, got splits {list(ds.keys())}")
    if isinstance(ds, datasets.IterableDataset):
        raise DataError(f"{name}: to_tensor needs a map-style dataset, not a stream; use "
                        "iterate_batches() on the stream, or load it with streaming=False")
    if not isinstance(ds, datasets.Dataset):
        raise DataError(f"to_tensor: expected a datasets.Dataset, got {type(ds).__name__}")
    if image_key is None:
        try:
            image_key = (_ORIGIN.get(ds) or (None, None))[1]
        except TypeError:
            image_key = None
    key = _image_column(ds.features, image_key, name)
    if len(ds) == 0:
        raise DataError(f"{name}: the dataset has no rows")
    if isinstance(ds.features[key], datasets.Image):
        arr = _decode_images(ds, key, name, shape, convert)
    else:
        if convert:
            raise DataError(f"{name}: convert=True applies to image columns only; {key!r} holds arrays")
        arr = _array_column(ds, key, name, shape)
    return torch.from_numpy(arr)

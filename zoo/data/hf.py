"""The Hugging Face ``datasets`` package, imported on first use, and the spec and image column
recorded for each dataset :func:`~zoo.data.load_dataset` returns (named in error messages)."""
from __future__ import annotations

import weakref
from typing import Any

from zoo.errors import DataError


def _datasets():
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise DataError("latent-zoo's data layer needs the 'datasets' package "
                        "(pip install datasets)") from e
    return datasets


# spec and image_key recorded for the datasets load_dataset() returns (used by error messages)
_ORIGIN: "weakref.WeakKeyDictionary[Any, tuple[str, str | None]]" = weakref.WeakKeyDictionary()


def _remember(ds: Any, spec: str, image_key: str | None) -> None:
    try:
        _ORIGIN[ds] = (spec, image_key)
    except TypeError:  # not weak-referenceable: names fall back to the dataset's info
        pass


def _name_of(ds: Any) -> str:
    try:
        hit = _ORIGIN.get(ds)
    except TypeError:
        hit = None
    if hit:
        return hit[0]
    info = getattr(ds, "info", None)
    for attr in ("dataset_name", "builder_name"):
        value = getattr(info, attr, None)
        if value:
            return str(value)
    return "<dataset>"

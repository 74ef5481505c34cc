"""Sample-quality numbers as mean +- SE over sample seeds, beside the test-vs-train floor of the model's space.

One draw of N samples gives one FID; another draw gives another (``vae-digits``: 9.76 from one draw against
8.69 +- 1.72 over ten).  So each metric is computed for ``seeds`` independent sample draws (seeds s_0, s_0 + 1,
...; s_0 the model's own seed unless given) and reported as the mean over draws with its standard error
std / sqrt(seeds) (sample std, ddof = 1).

The floor is the same metric between two sets of real images *in the model's data space* (binarised for a
binarised model): the reference split against an equal-sized random subset of ``floor_split`` (default
train), one subset per seed, mean +- SE.  A model cannot be expected to score below it at this N.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from zoo.errors import UsageError
from zoo.quality.fidelity import METRICS, fidelity_metrics

SEEDED = ("fid", "kid", "precision", "recall")
DEFAULT_SEEDS = 5


def mean_se(values: list[float]) -> tuple[float, float | None]:
    """Mean and its standard error (sample std / sqrt(k)); SE None for one value."""
    k = len(values)
    mean = sum(values) / k
    if k < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (k - 1)
    return mean, math.sqrt(var / k)


def summarise(draws: list[dict[str, Any]], prefix: str = "") -> dict[str, Any]:
    """``{prefix}fid``, ``{prefix}fid_se``, ``{prefix}fid_draws``, ... over the draws' metrics."""
    out: dict[str, Any] = {}
    for key in SEEDED:
        values = [d[key] for d in draws if key in d]
        if values:
            m, se = mean_se(values)
            out.update({f"{prefix}{key}": m, f"{prefix}{key}_se": se, f"{prefix}{key}_draws": values})
    return out


def _seeds(first: int, count: int) -> list[int]:
    if not (isinstance(count, int) and count >= 1):
        raise UsageError(f"--seeds: expected a positive number of sample seeds, got {count!r}")
    return [(first + i) % (2 ** 31) for i in range(count)]


@torch.no_grad()
def floor_over_seeds(model, data: str, *, split: str = "test", floor_split: str = "train", n: int | None = None,
                     metrics=METRICS, features=None, inception_path: str | None = None, seeds: int = DEFAULT_SEEDS,
                     seed: int = 0, progress: Callable[[], None] | None = None) -> dict[str, Any]:
    """The test-vs-train floor in ``model``'s data space: ``split`` against random equal-sized subsets of
    ``floor_split`` (one per seed), mean +- SE of each metric."""
    from zoo.quality.evaluate import reference_images, resolve_features

    feats = resolve_features(features, data) if features is None or isinstance(features, str) else features
    real = reference_images(model, data, split, n)
    other = reference_images(model, data, floor_split, None)
    draws = []
    for s in _seeds(seed, seeds):
        g = torch.Generator().manual_seed(s)
        pick = other[torch.randperm(len(other), generator=g)[:len(real)]]
        draws.append(fidelity_metrics(pick, real, features=feats, metrics=tuple(metrics),
                                      inception_path=inception_path))
        if progress:
            progress()
    out = summarise(draws, "floor_")
    out.update({"floor": f"{data} [{floor_split}] against [{split}] in the model's data space, "
                         f"{min(len(other), len(real))} vs {len(real)} images, {seeds} random subsets",
                "floor_seeds": _seeds(seed, seeds)})
    return out


def evaluate_over_seeds(model, data: str, *, split: str = "test", n: int | None = None, metrics=METRICS,
                        features: str | None = None, inception_path: str | None = None, seed: int | None = None,
                        seeds: int = DEFAULT_SEEDS, floor: bool = True, floor_split: str = "train",
                        progress: Callable[[], None] | None = None, sampler: dict[str, Any] | None = None
                        ) -> dict[str, Any]:
    """:func:`zoo.quality.evaluate.evaluate_model` over ``seeds`` sample draws: each metric's mean, SE and
    per-draw values, with (``floor=True``) the test-vs-train floor of the model's data space beside them."""
    from zoo.diagnostics import default_seed
    from zoo.quality.evaluate import evaluate_model, resolve_features

    first = default_seed(model) if seed is None else seed
    feats = resolve_features(features, data)
    draws = []
    for s in _seeds(first, seeds):
        draws.append(evaluate_model(model, data, split=split, n=n, metrics=metrics, features=features,
                                    inception_path=inception_path, seed=s, sampler=sampler))
        if progress:
            progress()
    report = {k: v for k, v in draws[0].items() if k not in SEEDED and k not in ("kid_std", "seed")}
    report.update(summarise(draws))
    report.update({"seeds": _seeds(first, seeds), "seed": first})
    if floor:
        report.update(floor_over_seeds(model, data, split=split, floor_split=floor_split, n=n, metrics=metrics,
                                       features=feats, inception_path=inception_path, seeds=seeds, seed=first,
                                       progress=progress))
    from zoo.data_space import data_space

    report["data_space"] = data_space(model, data).label
    return report

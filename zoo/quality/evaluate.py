"""``evaluate_model``: a model's samples against a data split, FID/KID/precision-recall on named features.

The reference images are the split *as the model's likelihood sees them* (``model.to_images(model.prepare(x))``:
binarised for a Bernoulli decoder).  The samples live in the same space: x ~ p(x|z) for a discrete
likelihood (Bernoulli, discretized: binary or 8-bit images like the reference), the decoder's mean for a
continuous one (where pixel noise would dominate every feature statistic).
"""
from __future__ import annotations

from typing import Any

import torch

from zoo.errors import UsageError
from zoo.quality.fidelity import METRICS, fidelity_metrics, to_uint8


def resolve_features(features: str | None, data: str):
    """``None``: the feature network registered for ``data``, else Inception; a name: that network."""
    from zoo.quality.features import feature_network, feature_network_for

    if features == "inception":
        return "inception"
    if features is None:
        net = feature_network_for(data)
        return net if net is not None else "inception"
    return feature_network(features)


@torch.no_grad()
def reference_images(model, data: str, split: str, n: int | None) -> torch.Tensor:
    """uint8 images of ``data``'s ``split`` in the model's data space (at most ``n``)."""
    from zoo.data import card_source_options, load_tensors

    x = load_tensors(data, split, **card_source_options(data, model.card.spec.data if model.card is not None else {},
                                                                 None))
    x = x[:n] if n else x
    return torch.cat([to_uint8(model.to_images(model.prepare(x[i:i + 500]))) for i in range(0, len(x), 500)])


@torch.no_grad()
def evaluate_model(model, data: str, *, split: str = "test", n: int | None = None, metrics=METRICS,
                   features: str | None = None, inception_path: str | None = None, seed: int | None = None,
                   sampler: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sample-quality numbers of ``model`` against ``data`` [``split``]; n samples = n reference images
    (default: the whole split).  Every number is reported with the features that made it.

    ``sampler``: ``{"name": "ddim", "steps": 50, ...}`` draws with that registered sampler when the model's prior
    declares it (zoo.contracts.declared_samplers), else the model's own ancestral sampling; the report says
    which (``sampler``)."""
    from zoo.diagnostics import default_seed

    feats = resolve_features(features, data)
    real = reference_images(model, data, split, n)
    if len(real) < 2:
        raise UsageError(f"--data {data} [{split}]: need at least 2 reference images, got {len(real)}")
    seed = default_seed(model) if seed is None else seed
    model.eval()
    generator = torch.Generator(device=model.device).manual_seed(seed)
    mean = not model.decoder.likelihood.discrete
    options = _sampler_options(model, sampler)
    from zoo.progress import bar

    fake = torch.cat([to_uint8(model.sample(min(500, len(real) - i), mean=mean, generator=generator, **options))
                      for i in bar(range(0, len(real), 500), desc=f"sample {model.name}", unit="batch of 500")])
    if tuple(fake.shape[1:]) != tuple(real.shape[1:]):
        raise UsageError(f"model {model.name!r} samples images of shape {list(fake.shape[1:])}, "
                         f"but --data {data} has {list(real.shape[1:])}")
    out = fidelity_metrics(fake, real, features=feats, metrics=tuple(metrics), inception_path=inception_path)
    out.update({"model": model.name, "data": data, "split": split, "seed": seed,
                "samples": "the decoder's mean" if mean else "x ~ p(x|z) (a discrete likelihood)",
                "reference": f"{data} [{split}] in the model's data space",
                "sampler": _describe_sampler(model, options)})
    return out


def _describe_sampler(model, options: dict[str, Any]) -> str:
    """``ddim (steps=50)``, the card's default sampler, or ``ancestral``."""
    if not options:
        if model.default_sampler is None:
            return "ancestral"
        options = {"sampler": model.default_sampler[0], **model.default_sampler[1]}
    rest = ", ".join(f"{k}={v}" for k, v in options.items() if k != "sampler")
    return options["sampler"] + (f" ({rest})" if rest else "")


def _sampler_options(model, sampler: dict[str, Any] | None) -> dict[str, Any]:
    """``model.sample`` keyword arguments for ``sampler`` when the model's prior declares it, else none."""
    from zoo import contracts as c

    if not sampler:
        return {}
    options = dict(sampler)
    name = options.pop("name", None)
    if not isinstance(name, str):
        raise UsageError(f"sampler: expected a mapping with a 'name', got {sampler!r}")
    if name not in c.declared_samplers(model.prior):
        return {}
    return {"sampler": name, **options}


def quality_results(report: dict[str, Any]) -> dict[str, Any]:
    """The card's ``zoo.results`` entries of an evaluate report (keys ``fid``, ``fid_se``, ``floor_fid``, ... and
    their provenance); a report over seeds (zoo.quality.seeds) keeps each metric's SE and the floor."""
    keep = ("fid", "kid", "kid_std", "precision", "recall")
    keep += tuple(f"{p}{k}{s}" for p in ("", "floor_") for k in keep[:1] + keep[2:] + ("kid",) for s in ("_se",))
    keep += tuple(f"floor_{k}" for k in ("fid", "kid", "precision", "recall"))
    out = {k: round(report[k], 6) for k in dict.fromkeys(keep) if report.get(k) is not None}
    out.update({"quality_features": report["features"], "quality_features_sha256": report["features_sha256"],
                "quality_n": report["n_generated"], "quality_split": report["split"],
                "quality_metrics_by": report["metrics_by"], "quality_seed": report["seed"]})
    if report.get("seeds"):
        out["quality_seeds"] = len(report["seeds"])
    if report.get("floor"):
        out["quality_floor"] = report["floor"]
    return out


def record_in_folder(folder, quality: dict[str, Any]) -> None:
    """Merge sample-quality results into a run folder's card: config.json's ``zoo.results`` and README.md
    (front matter, its model-index and results table), each written atomically."""
    import json
    from pathlib import Path

    from zoo.store.atomic import write_atomic
    from zoo.store.run_folder import CARD, CONFIG, read_folder_card

    folder = Path(folder)
    card = read_folder_card(folder)
    card = card.with_results({**(card.zoo.get("results") or {}), **quality})
    config_path = folder / CONFIG
    if config_path.is_file():
        config = json.loads(config_path.read_text())
        config["zoo"]["results"] = card.zoo["results"]
        write_atomic(config_path, json.dumps(config, indent=2, sort_keys=False) + "\n")
    write_atomic(folder / CARD, card.to_markdown())


def record_in_card(path, quality: dict[str, Any]) -> None:
    """Merge sample-quality results into a card file's ``zoo.results`` (other lines kept as written)."""
    from zoo.cards import read_card
    from pathlib import Path

    from zoo.cards.edit import set_zoo_fields

    card = read_card(path, name=Path(path).stem)  # a catalogue card is named after its file
    set_zoo_fields(path, {"results": {**(card.zoo.get("results") or {}), **quality}})

"""What the Hugging Face Hub reads from a card: its YAML metadata (licence, tags, base model) and
the ``model-index`` built from measured results; ``check_hub_metadata`` refuses what the Hub would."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from zoo.cards.spec import HUB_LICENSES, ResultsSpec, check_metadata  # noqa: F401 - HUB_LICENSES: zoo.cards
from zoo.cards.spec import CardLike as Card  # a card is read through its typed spec; this module never builds one
from zoo.errors import CardError

LIBRARY_NAME = "latent-zoo"
DEFAULT_PIPELINE_TAG = "unconditional-image-generation"
METRICS = {  # results key -> (metric type, human name)
    "elbo": ("elbo", "ELBO (nats)"),
    "nll": ("nll", "NLL (nats)"),
    "nll_bpd": ("bits_per_dim", "NLL (bits/dim)"),
    "elbo_bpd": ("elbo_bits_per_dim", "negative ELBO (bits/dim)"),
    "distortion": ("distortion", "distortion -E log p(x|z) (nats)"),
    "rate": ("rate", "rate KL(q(z|x)||p(z)) (nats)"),
    "mutual_information": ("mutual_information", "I_q(x;z) (nats)"),
    "marginal_kl": ("marginal_kl", "KL(q(z)||p(z)) (nats)"),
    "active_units": ("active_units", "active units"),
    # sample quality (zoo evaluate): each metric's args name the features that made it
    "fid": ("fid", "FID (on the features named in args)"),
    "kid": ("kid", "KID (on the features named in args)"),
    "precision": ("precision", "precision, k-NN manifold (Kynkaanniemi et al. 2019)"),
    "recall": ("recall", "recall, k-NN manifold (Kynkaanniemi et al. 2019)"),
}
QUALITY = ("fid", "kid", "precision", "recall")
ELBO_ESTIMATOR = "one z ~ q(z|x) per test point (exact sum over z for discrete posteriors), averaged over N"
# provenance copied into every metric's ``args`` (model-index has no per-result slot for them)
RUN_ARGS = ("n", "seed", "zoo_version")


def model_family(card: Card) -> str:
    """The family tag: the one the prior (else the encoder, else the decoder) declares
    (``family``, zoo.contracts), else from the objective: iwae, beta-vae or vae."""
    from zoo.contracts import family_of
    from zoo.errors import PluginError
    from zoo.registry import get_registry

    for kind in ("prior", "encoder", "decoder"):
        entry = get_registry().find(kind, str(card.spec.component(kind).name or ""))
        if entry is None:
            continue
        try:
            family = family_of(entry.resolve())
        except PluginError:  # a plugin that does not import: no declared family to read
            family = None
        if family:
            return family
    if card.spec.objective.iwae_k > 1:
        return "iwae"
    if card.beta != 1.0:
        return "beta-vae"
    return "vae"


def base_model(card: Card) -> str | None:
    """The upstream repo the weights were converted from (``zoo.weights`` with a converter), unless the card
    says otherwise (``base_model`` in its metadata) or the weights were trained from scratch by ``zoo train``."""
    if "base_model" in card.metadata:
        return card.metadata["base_model"]
    if _converted(card):
        return card.spec.weights.repo
    return None


def _converted(card: Card) -> bool:
    """The weights were converted from an upstream layout (a converter), not trained here (no results steps)."""
    spec = card.spec
    return bool(spec.weights and spec.weights.converter) and (spec.results is None or spec.results.steps is None)


def hub_metadata(card: Card) -> dict[str, Any]:
    """The card's YAML metadata with the Hub defaults filled in (the card's own values win)."""
    meta = copy.deepcopy(card.metadata)
    meta.setdefault("library_name", LIBRARY_NAME)
    meta.setdefault("pipeline_tag", DEFAULT_PIPELINE_TAG)
    tags = meta.get("tags") or []
    if isinstance(tags, (str, list)):  # anything else is left for check_hub_metadata to refuse
        tags = [tags] if isinstance(tags, str) else list(tags)
        for tag in (LIBRARY_NAME, model_family(card)):
            if tag not in tags:
                tags.append(tag)
        meta["tags"] = tags
    base = base_model(card)
    if base and "base_model" not in meta:
        meta["base_model"] = base
    if meta.get("base_model") and _converted(card):
        # converted weights are the upstream weights in another layout, not a fine-tune; of the relations the
        # Hub knows (adapter, merge, quantized, finetune), "quantized" is the one that claims no training
        meta.setdefault("base_model_relation", "quantized")
    return meta


def dataset_revision(card: Card) -> str | None:
    spec = card.spec
    rev = (spec.results and spec.results.dataset_revision) or spec.data.revision
    return str(rev) if rev else None


def _embedded(spec: str):
    if not spec.startswith("zoo:"):
        return None
    from zoo.registry import get_registry

    entry = get_registry().find("data", spec[4:])
    try:
        return entry.resolve() if entry is not None else None
    except Exception:  # noqa: BLE001 - a broken data plugin: keep the spec as the dataset name
        return None


def model_index(card: Card) -> list[dict[str, Any]]:
    """The Hub's ``model-index`` built from ``zoo.results`` (empty when nothing was measured).

    One result per evaluation (task, data set with split and revision); one metric per measured number, each
    with ``args`` saying how it was measured (estimator, k) and by which run (N, seed, beta, steps, zoo version)."""
    results = card.spec.results or ResultsSpec()
    run_args = {k: results.get(k) for k in RUN_ARGS if results.get(k) is not None}
    estimators = {
        "elbo": {"estimator": ELBO_ESTIMATOR, "se": results.elbo_se},
        "nll": {"estimator": results.nll_estimator, "k": results.iwae_k or None,
                "se": results.nll_se},
        "nll_bpd": {"estimator": results.nll_estimator, "k": results.iwae_k},
        "mutual_information": {"estimator": results.mi_estimator, "se": results.mutual_information_se,
                               "upper_bound": results.mutual_information_upper,
                               "saturated": results.mi_saturated, "kind": results.mutual_information_kind,
                               "split": results.mi_split, "n": results.mi_n},
        "marginal_kl": {"estimator": results.marginal_kl_estimator or results.mi_estimator,
                        "se": results.marginal_kl_se, "lower_bound": results.marginal_kl_lower,
                        "kind": results.marginal_kl_kind, "split": results.mi_split},
        "active_units": {"latent_dims": results.latent_dims, "threshold": "Cov_x E_q[z_d] > 0.01"},
    }
    quality_args = {"features": results.quality_features, "features_sha256": results.quality_features_sha256,
                    "n_samples": results.quality_n, "split": results.quality_split,
                    "computed_by": results.quality_metrics_by}
    estimators.update({k: dict(quality_args) for k in QUALITY})
    estimators["kid"]["std"] = results.kid_std
    metrics = []
    for key, (t, label) in METRICS.items():
        value = results.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if key in ("nll", "nll_bpd") and results.nll_kind in ("exact", "negative ELBO"):
            label = f"{label[:-1]}, {'exact' if results.nll_kind == 'exact' else 'upper bound: -ELBO'})"
        elif key == "mutual_information" and results.mutual_information_kind == "lower bound":
            label = "I_q(x;z), a lower bound (nats)"
        elif key == "marginal_kl" and results.marginal_kl_kind == "upper bound":
            label = "KL(q(z)||p(z)), an upper bound (nats)"
        elif key in ("nll", "nll_bpd") and results.iwae_k:
            label = f"{label[:-1]}, IWAE k={results.iwae_k})"
        args = {k: v for k, v in estimators.get(key, {}).items() if v is not None}
        args.update(run_args)
        metric: dict[str, Any] = {"type": t, "name": label, "value": value}
        if args:
            metric["args"] = args
        metrics.append(metric)
    if not metrics:
        return []
    spec = str(results.dataset or card.spec.data.source)
    split = str(results.split or "test")
    dataset = {"name": spec, "type": spec, "split": str(results.split_label or split)}
    source = _embedded(spec)
    if source is not None and getattr(source, "hub_id", None):
        # the Hub id of the upstream data set; the name says which sample of it, the split how it was carved
        dataset.update({"type": source.hub_id, "name": source.title or spec, "split": source.split_label(split)})
    revision = dataset_revision(card)
    if revision:
        dataset["revision"] = revision
    return [{"name": card.name, "results": [{
        "task": {"type": "unconditional-image-generation", "name": "Density estimation"},
        "dataset": dataset, "metrics": metrics}]}]


def check_hub_metadata(text: str, *, source: str | Path) -> None:
    """Refuse a README whose YAML metadata the Hub would reject; the error names ``source`` and the field."""
    from huggingface_hub import ModelCard

    def fail(fieldname: str, msg: str) -> CardError:
        return CardError(f"{source}: field '{fieldname}': {msg}")

    try:
        meta = yaml.safe_load(text.split("\n---", 1)[0][3:]) or {}
    except yaml.YAMLError as e:
        raise CardError(f"{source}: invalid YAML front matter: {e}") from None
    if not isinstance(meta, dict):
        raise CardError(f"{source}: front matter must be a mapping")
    check_metadata(meta, source)
    if "model-index" in meta:
        index = meta["model-index"]
        if not isinstance(index, list) or not index:
            raise fail("model-index", "must be a non-empty list")
        for i, entry in enumerate(index):
            for j, result in enumerate(entry.get("results") or [] if isinstance(entry, dict) else [None]):
                if not isinstance(result, dict):
                    raise fail(f"model-index[{i}].results[{j}]", "must be a mapping")
                for part, needed in (("task", ("type",)), ("dataset", ("type", "name"))):
                    block = result.get(part)
                    if not isinstance(block, dict) or any(not isinstance(block.get(n), str) for n in needed):
                        raise fail(f"model-index[{i}].results[{j}].{part}",
                                   f"must be a mapping with {' and '.join(needed)} (strings)")
                for m, metric in enumerate(result.get("metrics") or []):
                    where = f"model-index[{i}].results[{j}].metrics[{m}]"
                    if not isinstance(metric, dict) or not isinstance(metric.get("type"), str):
                        raise fail(where, "must be a mapping with a 'type'")
                    value = metric.get("value")
                    if not isinstance(value, (int, float, str)) or isinstance(value, bool):
                        raise fail(f"{where}.value", f"must be a number, got {value!r}")
    try:
        card = ModelCard(text, ignore_metadata_errors=False)
    except Exception as e:  # noqa: BLE001 - huggingface_hub raises ValueError/KeyError/TypeError here
        raise CardError(f"{source}: field 'model-index' or metadata the Hub cannot read: {e}") from None
    if "model-index" in meta and not card.data.eval_results:
        raise fail("model-index", "has no metrics the Hub can read")


def validate_on_hub(text: str, *, source: str | Path) -> bool:
    """``ModelCard.validate()``: the Hub's own check of the metadata (needs the Hub; ``check_hub_metadata``
    is the offline fallback).  Returns False when the validation service could not be reached."""
    from huggingface_hub import ModelCard

    try:
        ModelCard(text, ignore_metadata_errors=True).validate()
    except ValueError as e:  # the Hub refused the metadata
        raise CardError(f"{source}: the Hub rejects this card's metadata: {e}") from None
    except Exception:  # noqa: BLE001 - offline, or the service is unreachable: the offline checks stand
        return False
    return True

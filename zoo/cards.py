"""Model cards: Markdown with Hugging Face YAML front matter plus a ``zoo:`` block.

The ``zoo:`` block says how to build the model (encoder, decoder, prior and their arguments),
what data it models, how to train it, where its weights live and what was measured.  The same
file, rendered with measured results, is the README.md of a trained run and of a Hub repo.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import CardError

COMPONENTS = ("encoder", "decoder", "prior")
ZOO_FIELDS = {"name", "description", "data", "latent", "encoder", "decoder", "prior",
              "objective", "train", "weights", "results"}
REQUIRED = ("data", "latent", "encoder", "decoder", "prior")
DATA_FIELDS = {"source", "shape", "image_key", "revision", "split", "test_split"}
WEIGHT_FIELDS = {"repo", "revision", "file", "sha256", "converter", "config_file", "variant"}
OBJECTIVE_FIELDS = {"beta", "iwae_k", "loss"}


@dataclass
class Card:
    """A parsed, validated model card."""

    name: str
    zoo: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    body: str = ""
    path: Path | None = None

    # -- convenient views ----------------------------------------------------------------------
    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self.zoo["data"]["shape"])

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.zoo["latent"]["shape"])

    @property
    def beta(self) -> float:
        return float(self.zoo.get("objective", {}).get("beta", 1.0))

    def component(self, kind: str) -> tuple[str, dict[str, Any]]:
        spec = dict(self.zoo[kind])
        return spec.pop("name"), spec

    # -- writing -------------------------------------------------------------------------------
    def to_markdown(self, *, repo_id: str | None = None) -> str:
        """The card as Markdown the Hub reads: front matter (Hub metadata, ``zoo`` block, model-index) and body.

        The metadata gets the Hub defaults (``library_name: latent-zoo``, the ``latent-zoo`` and family tags);
        with measured results the body gets a results table with the commands that reproduce the numbers
        (``repo_id`` names the published model in those commands)."""
        front = hub_metadata(self)
        zoo = dict(self.zoo)
        zoo["name"] = self.name
        front["zoo"] = zoo
        index = model_index(self)
        if index:
            front["model-index"] = index
        text = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=100)
        body = with_results_section(self.body, self, repo_id=repo_id)
        return f"---\n{text}---\n{body if body.startswith(chr(10)) else chr(10) + body}"

    def with_results(self, results: dict[str, Any]) -> "Card":
        card = copy.deepcopy(self)
        card.zoo["results"] = results
        return card


def parse_card(text: str, *, source: str | Path = "<string>", name: str | None = None) -> Card:
    """Parse and validate a card; errors name ``source`` and the field."""
    if not text.startswith("---"):
        raise CardError(f"{source}: a card must start with YAML front matter ('---')")
    parts = text.split("\n---", 1)
    if len(parts) != 2:
        raise CardError(f"{source}: unterminated YAML front matter (no closing '---')")
    head, body = parts[0][3:], parts[1]
    body = body[body.index("\n") + 1:] if "\n" in body else ""
    try:
        front = yaml.safe_load(head) or {}
    except yaml.YAMLError as e:
        raise CardError(f"{source}: invalid YAML front matter: {e}") from None
    if not isinstance(front, dict):
        raise CardError(f"{source}: front matter must be a mapping")
    if "zoo" not in front:
        raise CardError(f"{source}: missing field 'zoo' (the block that defines the model)")
    metadata = {k: v for k, v in front.items() if k not in ("zoo", "model-index")}
    zoo = validate_zoo(front["zoo"], source)
    card_name = zoo.pop("name", None)
    if name is not None and card_name is not None and card_name != name:
        raise CardError(f"{source}: field 'zoo.name' is {card_name!r} but the card file is named {name!r}")
    final = name or card_name
    if not final:
        raise CardError(f"{source}: missing field 'zoo.name'")
    return Card(final, zoo, metadata, body, Path(source) if source != "<string>" else None)


def read_card(path: str | Path, *, name: str | None = None) -> Card:
    """Read a card file; a card in ``cards/`` is named after its file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CardError(f"{path}: cannot read card: {e.strerror}") from None
    return parse_card(text, source=path, name=name)


def validate_zoo(zoo: Any, source: str | Path) -> dict[str, Any]:
    """Check the ``zoo`` block's fields and types; return a deep copy."""
    def fail(fieldname: str, msg: str) -> CardError:
        return CardError(f"{source}: field 'zoo.{fieldname}': {msg}")

    if not isinstance(zoo, dict):
        raise CardError(f"{source}: field 'zoo' must be a mapping")
    zoo = copy.deepcopy(zoo)
    unknown = sorted(set(zoo) - ZOO_FIELDS)
    if unknown:
        raise fail(unknown[0], f"unknown field; allowed: {', '.join(sorted(ZOO_FIELDS))}")
    for key in REQUIRED:
        if key not in zoo:
            raise fail(key, "missing")
    data = zoo["data"]
    _check_mapping(data, "data", DATA_FIELDS, fail)
    if "source" not in data:
        raise fail("data.source", "missing (a Hub dataset id, a local path, zoo:mnist-5k or zoo:digits)")
    data["shape"] = _shape(data.get("shape"), "data.shape", fail, length=3)
    _check_mapping(zoo["latent"], "latent", {"shape"}, fail)
    zoo["latent"]["shape"] = _shape(zoo["latent"].get("shape"), "latent.shape", fail)
    for kind in COMPONENTS:
        spec = zoo[kind]
        if not isinstance(spec, dict):
            raise fail(kind, "must be a mapping with a 'name' and the component's arguments")
        if not isinstance(spec.get("name"), str) or not spec["name"]:
            raise fail(f"{kind}.name", "missing or not a string")
    if "objective" in zoo:
        _check_mapping(zoo["objective"], "objective", OBJECTIVE_FIELDS, fail)
        beta = zoo["objective"].get("beta", 1.0)
        if not isinstance(beta, (int, float)) or isinstance(beta, bool) or beta < 0:
            raise fail("objective.beta", f"must be a number >= 0, got {beta!r}")
        k = zoo["objective"].get("iwae_k", 1)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise fail("objective.iwae_k", f"must be an integer >= 1, got {k!r}")
        loss = zoo["objective"].get("loss", "elbo")
        if not isinstance(loss, str) or not loss:
            raise fail("objective.loss", f"must be a name ('elbo', or one the prior's training_loss knows), got {loss!r}")
    if "train" in zoo and not isinstance(zoo["train"], dict):
        raise fail("train", "must be a mapping")
    if "weights" in zoo:
        _check_mapping(zoo["weights"], "weights", WEIGHT_FIELDS, fail)
        for key in ("repo", "file"):
            if not isinstance(zoo["weights"].get(key), str):
                raise fail(f"weights.{key}", "missing or not a string")
    if "results" in zoo and not isinstance(zoo["results"], dict):
        raise fail("results", "must be a mapping")
    return zoo


def _check_mapping(value: Any, name: str, allowed: set[str], fail) -> None:
    if not isinstance(value, dict):
        raise fail(name, "must be a mapping")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise fail(f"{name}.{unknown[0]}", f"unknown field; allowed: {', '.join(sorted(allowed))}")


def _shape(value: Any, name: str, fail, length: int | None = None) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (not isinstance(value, (list, tuple)) or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise fail(name, f"must be a list of positive integers, got {value!r}")
    if length is not None and len(value) != length:
        raise fail(name, f"must have {length} entries (channels, height, width), got {list(value)}")
    return list(value)


# -- Hub metadata, model-index and the results section -------------------------------------------
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
}
ELBO_ESTIMATOR = "one z ~ q(z|x) per test point (exact sum over z for discrete posteriors), averaged over N"
# provenance copied into every metric's ``args`` (model-index has no per-result slot for them)
RUN_ARGS = ("n", "seed", "zoo_version")
RESULTS_START = "<!-- latent-zoo:results:start -->"
RESULTS_END = "<!-- latent-zoo:results:end -->"
# License ids the Hub accepts in a model card (https://huggingface.co/docs/hub/repositories-licenses).
HUB_LICENSES = frozenset("""
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 bigcode-openrail-m
afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0 cc-by-2.5
cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0
cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0 cdla-permissive-1.0
cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl
lgpl-2.1 lgpl-3.0 isc h-research intel-research lppl-1.3c ms-pl apple-ascl apple-amlr mpl-2.0 odc-by odbl openrail++
osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr deepfloyd-if-license fair-noncommercial-research-license
llama2 llama3 llama3.1 llama3.2 llama3.3 llama4 gemma unknown other
""".split())
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")


def model_family(card: Card) -> str:
    """A coarse family tag: diffusion, iwae, beta-vae or vae."""
    names = " ".join(str(card.zoo[k].get("name", "")) for k in COMPONENTS)
    if "diffusion" in names or "unet" in names or "ddpm" in names:
        return "diffusion"
    objective = card.zoo.get("objective") or {}
    if int(objective.get("iwae_k", 1)) > 1:
        return "iwae"
    if card.beta != 1.0:
        return "beta-vae"
    return "vae"


def base_model(card: Card) -> str | None:
    """The upstream repo the weights were converted from (``zoo.weights`` with a converter), unless the card
    says otherwise (``base_model`` in its metadata) or the weights were trained from scratch by ``zoo train``."""
    if "base_model" in card.metadata:
        return card.metadata["base_model"]
    weights = card.zoo.get("weights") or {}
    trained_here = "steps" in (card.zoo.get("results") or {})
    if weights.get("converter") and not trained_here:
        return weights.get("repo")
    return None


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
    return meta


def dataset_revision(card: Card) -> str | None:
    results = card.zoo.get("results") or {}
    rev = results.get("dataset_revision") or card.zoo["data"].get("revision")
    return str(rev) if rev else None


def model_index(card: Card) -> list[dict[str, Any]]:
    """The Hub's ``model-index`` built from ``zoo.results`` (empty when nothing was measured).

    One result per evaluation (task, data set with split and revision); one metric per measured number, each
    with ``args`` saying how it was measured (estimator, k) and by which run (N, seed, beta, steps, zoo version)."""
    results = card.zoo.get("results") or {}
    run_args = {k: results[k] for k in RUN_ARGS if results.get(k) is not None}
    estimators = {
        "elbo": {"estimator": ELBO_ESTIMATOR},
        "nll": {"estimator": results.get("nll_estimator"), "k": results.get("iwae_k")},
        "nll_bpd": {"estimator": results.get("nll_estimator"), "k": results.get("iwae_k")},
        "mutual_information": {"estimator": results.get("mi_estimator")},
        "marginal_kl": {"estimator": results.get("mi_estimator")},
        "active_units": {"latent_dims": results.get("latent_dims"), "threshold": "Cov_x E_q[z_d] > 0.01"},
    }
    metrics = []
    for key, (t, label) in METRICS.items():
        value = results.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if key in ("nll", "nll_bpd") and results.get("iwae_k"):
            label = f"{label[:-1]}, IWAE k={results['iwae_k']})"
        args = {k: v for k, v in estimators.get(key, {}).items() if v is not None}
        args.update(run_args)
        metric: dict[str, Any] = {"type": t, "name": label, "value": value}
        if args:
            metric["args"] = args
        metrics.append(metric)
    if not metrics:
        return []
    data = card.zoo["data"]
    name = str(results.get("dataset", data["source"]))
    dataset = {"name": name, "type": name, "split": str(results.get("split", "test"))}
    revision = dataset_revision(card)
    if revision:
        dataset["revision"] = revision
    return [{"name": card.name, "results": [{
        "task": {"type": "unconditional-image-generation", "name": "Density estimation"},
        "dataset": dataset, "metrics": metrics}]}]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def results_section(card: Card, *, repo_id: str | None = None) -> str:
    """Markdown: the measured numbers, how each was measured and the commands that reproduce them."""
    r = card.zoo.get("results") or {}
    if not any(isinstance(r.get(k), (int, float)) for k in METRICS):
        return ""
    data, split = r.get("dataset", card.zoo["data"]["source"]), r.get("split", "test")
    rows = [("ELBO", r.get("elbo"), r.get("elbo_bpd"), ELBO_ESTIMATOR + "; bits/dim of the negative ELBO")]
    if r.get("nll") is not None:
        rows.append((f"NLL (IWAE, k={r.get('iwae_k')})", r.get("nll"), r.get("nll_bpd"), r.get("nll_estimator", "")))
    rows += [("distortion -E_q log p(x|z)", r.get("distortion"), None, "same z as the ELBO"),
             ("rate KL(q(z|x) ‖ p(z))", r.get("rate"), None, "same z as the ELBO"),
             ("mutual information I_q(x;z)", r.get("mutual_information"), None, r.get("mi_estimator", "")),
             ("marginal KL(q(z) ‖ p(z))", r.get("marginal_kl"), None, "rate = I_q(x;z) + marginal KL")]
    lines = [RESULTS_START, "## Results", ""]
    where = f"`{data}`, split `{split}`"
    if r.get("n"):
        where += f", N={r['n']} points"
    rev = dataset_revision(card)
    where += f", data revision `{rev}`" if rev else (", built-in data set (fixed seeded split)"
                                                      if str(data).startswith("zoo:") else "")
    run = ", ".join(f"{label} {_fmt(r[k])}" for k, label in
                    (("steps", "steps"), ("seed", "seed"), ("beta", "beta"), ("train_seconds", "training seconds"),
                     ("zoo_version", "latent-zoo")) if r.get(k) is not None)
    lines += [f"Measured on {where}." + (f" Run: {run}." if run else ""), "",
              "| quantity | nats | bits/dim | how it was measured |", "|---|---:|---:|---|"]
    for label, nats, bpd, how in rows:
        if nats is not None:
            lines.append(f"| {_cell(label)} | {_fmt(nats)} | {_fmt(bpd) if bpd is not None else ''} | "
                         f"{_cell(how)} |")
    if r.get("active_units") is not None:
        lines.append(f"| active units | {r['active_units']}"
                     f"{' of ' + str(r['latent_dims']) if r.get('latent_dims') else ''} |  | "
                     f"units with Cov_x E_q[z_d] > 0.01 (Burda et al. 2015) |")
    if r.get("command"):
        lines += ["", "Every number above was measured at the end of the training run this command makes; "
                  "it reproduces them:", "", f"    {r['command']}", ""]
    else:
        lines += ["", "No command was recorded with these numbers; train and measure the model with:", "",
                  f"    zoo train {card.name} --data {data} --out RUN_DIR", ""]
    target = f"hf://{repo_id}" if repo_id else "RUN_DIR"
    k = f" --k {r['iwae_k']}" if r.get("iwae_k") else ""
    lines += ["Re-measure the published weights (same estimators and seed) with:", "",
              f"    zoo diagnose {target} --data {data} --split {split}{k}", "", RESULTS_END]
    return "\n".join(lines)


def with_results_section(body: str, card: Card, *, repo_id: str | None = None) -> str:
    """``body`` with its results section (between the latent-zoo markers) replaced by a fresh one."""
    if RESULTS_START in body and RESULTS_END in body:
        head, rest = body.split(RESULTS_START, 1)
        tail = rest.split(RESULTS_END, 1)[1]
        body = head.rstrip("\n") + ("\n" if head.strip() else "") + tail.lstrip("\n")
    section = results_section(card, repo_id=repo_id)
    if not section:
        return body
    return f"{body.rstrip()}\n\n{section}\n" if body.strip() else f"\n{section}\n"


def check_hub_metadata(text: str, *, source: str | Path) -> None:
    """Refuse a README whose YAML metadata the Hub would reject; the error names ``source`` and the field."""
    from huggingface_hub import ModelCard

    def fail(fieldname: str, msg: str) -> CardError:
        return CardError(f"{source}: field '{fieldname}': {msg}")

    try:
        meta = yaml.safe_load(text.split("\n---", 1)[0][3:]) or {}
    except yaml.YAMLError as e:
        raise CardError(f"{source}: invalid YAML front matter: {e}") from None
    lic = meta.get("license")
    if lic is not None:
        if not isinstance(lic, str):
            raise fail("license", f"must be one license id (a string), got {lic!r}")
        if lic not in HUB_LICENSES:
            raise fail("license", f"{lic!r} is not a license id the Hub knows (e.g. apache-2.0, mit, cc-by-4.0); "
                                  f"for another license use 'other' with license_name and license_link")
        if lic == "other" and not meta.get("license_name"):
            raise fail("license_name", "required when license is 'other'")
    for key in ("tags", "datasets", "base_model", "language", "metrics"):
        value = meta.get(key)
        if value is None:
            continue
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
            raise fail(key, f"must be a string or a list of strings, got {value!r}")
        if key in ("datasets", "base_model"):
            bad = [v for v in items if not _REPO_ID.fullmatch(v)]
            if bad:
                raise fail(key, f"{bad[0]!r} is not a Hub repo id (org/name)")
    for key in ("library_name", "pipeline_tag"):
        if key in meta and not isinstance(meta[key], str):
            raise fail(key, f"must be a string, got {meta[key]!r}")
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

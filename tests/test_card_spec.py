"""The typed card (zoo.cards.spec): every shipped card parses into it; a wrong type anywhere names the file and
the field path; ``extends`` is merged before the parse; the spec is frozen and follows the raw block."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from zoo.cards import read_card
from zoo.cards.spec import ComponentSpec, ObjectiveSpec, ResultsSpec, TrainSpec, WeightsSpec, ZooSpec
from zoo.errors import CardError

ROOT = Path(__file__).resolve().parents[1]
# every model card: the catalogue, the rendered one and the two third-party test packages' (a card whose name
# starts with "_" is a base for ``extends``, not a model: it is parsed through the cards that extend it)
CARDS = sorted([*(p for p in (ROOT / "cards").glob("*.md") if not p.stem.startswith("_")),
                *(ROOT / "cards" / "rendered").glob("*.md"), *(ROOT / "tests" / "plugins").glob("*/*/*.md")])

GOOD = """---
license: mit
zoo:
  data: {source: zoo:digits, shape: [1, 8, 8]}
  latent: {shape: [2]}
  encoder: {name: mlp, hidden: [16]}
  decoder: {name: mlp, hidden: [16], likelihood: bernoulli}
  prior: {name: standard-normal}
  objective: {beta: 2.0}
  train: {steps: 5, lr: 0.01, batch_size: 32}
  weights: {repo: org/tiny, file: model.safetensors}
  results: {elbo: -30.5, n: 100, dataset: zoo:digits}
---
body
"""


def test_the_card_list_is_the_one_on_disk():
    names = {p.stem for p in CARDS}
    assert {"vae-mnist", "ddpm-cifar10", "vae-laplace-digits", "vae-student-digits"} <= names and len(CARDS) >= 45


@pytest.mark.parametrize("path", CARDS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_card_parses_into_the_typed_card(path):
    card = read_card(path, name=None if path.parent.name == "rendered" else path.stem)
    spec = card.spec
    assert isinstance(spec, ZooSpec) and spec.data.shape == card.data_shape and len(spec.data.shape) == 3
    assert spec.latent.shape == tuple(card.zoo["latent"]["shape"])
    for kind in ("encoder", "decoder", "prior"):
        part = spec.component(kind)
        raw = card.zoo[kind]
        assert part.kind == kind and part.target == (raw.get("module") or raw["name"])
        assert part.arguments() == card.component(kind)[1]            # the plugin's options, untouched
    assert spec.objective.beta == float((card.zoo.get("objective") or {}).get("beta", 1.0)) == card.beta
    assert (spec.weights is None) == ("weights" not in card.zoo)
    for key, value in (card.zoo.get("results") or {}).items():     # typed or kept in extra, never dropped
        assert spec.results.get(key) == value or isinstance(value, dict), key


def _card(tmp_path, text: str, name: str = "broken") -> Path:
    path = tmp_path / f"{name}.md"
    path.write_text(text)
    return path


@pytest.mark.parametrize("old, new, field, why", [
    ("source: zoo:digits, shape: [1, 8, 8]", "source: zoo:digits, shape: big", "zoo.data.shape",
     "list of positive integers, got 'big'"),
    ("source: zoo:digits,", "source: 3,", "zoo.data.source", "got 3"),
    ("data: {source: zoo:digits,", "data: {source: zoo:digits, split: [train],", "zoo.data.split", "got ['train']"),
    ("latent: {shape: [2]}", "latent: {shape: [2, two]}", "zoo.latent.shape", "got [2, 'two']"),
    ("encoder: {name: mlp,", "encoder: {name: 7,", "zoo.encoder.name", "not a string"),
    ("prior: {name: standard-normal}", "prior: [standard-normal]", "zoo.prior", "must be a mapping"),
    ("decoder: {name: mlp, hidden: [16], likelihood: bernoulli}", "decoder: {module: 'not an import path'}",
     "zoo.decoder.module", "import path"),
    ("decoder: {name: mlp,", "decoder: {module: 'pkg.mod:Dec',", "zoo.decoder.hidden", "unknown field"),
    ("objective: {beta: 2.0}", "objective: {beta: high}", "zoo.objective.beta", "got 'high'"),
    ("objective: {beta: 2.0}", "objective: {iwae_k: 1.5}", "zoo.objective.iwae_k", "integer"),
    ("objective: {beta: 2.0}", "objective: {beta: 2.0, options: {a: 1}}", "zoo.objective.options", "unknown field"),
    ("objective: {beta: 2.0}", "objective: {gradient: dreg}", "zoo.objective.gradient", "iwae_k > 1"),
    ("lr: 0.01", "lr: fast", "zoo.train.lr", "must be a positive number, got 'fast'"),
    ("steps: 5,", "steps: true,", "zoo.train.steps", "positive integer"),
    ("batch_size: 32}", "batch_size: 32, freeze: [everything]}", "zoo.train.freeze", "encoder, decoder, prior"),
    ("batch_size: 32}", "batch_size: 32, colour: red}", "zoo.train.colour", "unknown training option"),
    ("file: model.safetensors}", "file: 12}", "zoo.weights.file", "neither a file name"),
    ("file: model.safetensors}", "file: model.safetensors, sha256: 5}", "zoo.weights.sha256", "hex digest"),
    ("{repo: org/tiny, file: model.safetensors}", "{packaged: ../x.safetensors, sha256: abc}", "zoo.weights.packaged",
     "relative to the card's folder"),
    ("results: {elbo: -30.5,", "results: {elbo: high,", "zoo.results.elbo", "must be a number, got 'high'"),
    ("n: 100,", "n: -1,", "zoo.results.n", "non-negative integer"),
    ("results: {", "sampler: {steps: 4}\n  results: {", "zoo.sampler.name", "missing"),
])
def test_a_wrong_type_names_the_file_and_the_field_path(tmp_path, old, new, field, why):
    assert old in GOOD
    path = _card(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(CardError) as err:
        read_card(path, name="broken")
    message = str(err.value)
    assert message.startswith(f"{path}: field '{field}'") and why in message, message


def test_the_good_card_parses_with_its_defaults(tmp_path):
    spec = read_card(_card(tmp_path, GOOD, "tiny"), name="tiny").spec
    assert spec.train.lr == 0.01 and spec.train.steps == 5 and spec.train.eval_iwae_k == 100   # a default
    assert spec.objective == ObjectiveSpec(beta=2.0) and not spec.objective.registered
    assert spec.weights.files() == {None: "model.safetensors"} and spec.sampler is None
    assert spec.results.elbo == -30.5 and spec.results.nll is None and spec.data.test_split == "test"


def test_extends_is_merged_before_the_parse(tmp_path):
    """A base's fields are parsed in the card that extends it (errors name that card); the child's values win."""
    base = GOOD.replace("lr: 0.01", "lr: fast")
    _card(tmp_path, base, "_base")
    child = _card(tmp_path, "---\nzoo:\n  extends: _base\n  latent: {shape: [3]}\n---\n", "child")
    with pytest.raises(CardError, match=rf"{child}: field 'zoo.train.lr': must be a positive number"):
        read_card(child, name="child")
    fixed = _card(tmp_path, "---\nzoo:\n  extends: _base\n  train: {lr: 0.5}\n  encoder: {name: conv}\n---\n",
                  "fixed")
    spec = read_card(fixed, name="fixed").spec
    assert spec.train.lr == 0.5 and spec.train.batch_size == 32               # merged key by key
    assert spec.encoder == ComponentSpec("encoder", name="conv")              # a new name replaces the component


def test_the_spec_is_frozen_and_follows_the_raw_block(tmp_path):
    card = read_card(_card(tmp_path, GOOD, "tiny"), name="tiny")
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.spec.train.lr = 1.0
    with pytest.raises(TypeError):
        card.spec.decoder.args["likelihood"] = "gaussian"                    # plugin options are read-only
    assert card.spec.decoder.arguments() == {"hidden": [16], "likelihood": "bernoulli"}   # plain copies
    card.zoo["train"] = {"lr": 0.2}                                          # the raw block changed in place
    assert card.spec.train.lr == 0.2 and card.spec.train.steps is None
    card.zoo["train"] = {"lr": -1}
    with pytest.raises(CardError, match=r"field 'zoo.train.lr': must be a positive number"):
        card.spec
    card.zoo["train"] = {}
    with pytest.raises(CardError, match=r"field 'zoo.results.elbo'"):
        card.with_results({"elbo": "high"})


def test_objective_options_and_train_overrides(tmp_path):
    from zoo.training.config import TrainConfig

    card = read_card(_card(tmp_path, GOOD.replace("{beta: 2.0}", "{name: factorvae, gamma: 6.0, beta: 1.0}"), "fv"),
                     name="fv")
    assert card.spec.objective.registered and card.spec.objective.arguments() == {"gamma": 6.0, "beta": 1.0}
    surrogate = read_card(_card(tmp_path, GOOD.replace("{beta: 2.0}", "{loss: simple, lambda_vlb: 0.001}"), "s"),
                          name="s").spec.objective
    assert surrogate.loss == "simple" and dict(surrogate.options) == {"lambda_vlb": 0.001}
    config = TrainConfig.from_card(card, epochs=3)
    assert config.epochs == 3 and config.steps is None and config.lr == 0.01    # --epochs drops the card's steps
    with pytest.raises(CardError, match=r"--lr \(zoo.train\(\.\.\., lr=\)\): must be a positive number"):
        TrainConfig.from_card(card, lr=-1.0)
    assert [f.name for f in dataclasses.fields(TrainConfig)] == [f.name for f in dataclasses.fields(TrainSpec)]


def test_every_typed_field_declares_its_check():
    for cls in (TrainSpec, WeightsSpec, ResultsSpec):
        for f in dataclasses.fields(cls):
            assert f.name == "extra" or f.metadata.get("check") is not None, f"{cls.__name__}.{f.name}"


def test_the_card_modules_import_one_way():
    """spec imports only zoo.errors; render, hub_schema and weights_spec do not import schema (no circle)."""
    cards = ROOT / "zoo" / "cards"

    def imports(name: str) -> set[str]:
        tree = ast.parse((cards / f"{name}.py").read_text())
        skip = {id(s) for n in ast.walk(tree) if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
                for s in ast.walk(n)}
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and id(n) not in skip
                and (n.module or "").startswith("zoo")}

    assert imports("spec") == {"zoo.errors"}
    for name in ("render", "hub_schema", "weights_spec"):
        assert "zoo.cards.schema" not in imports(name) and "zoo.cards" not in imports(name), name


def test_the_readme_card_reference_parses():
    """README's card example (section Cards) parses, and every field of its zoo.train table is a typed field."""
    import re

    from zoo.cards import parse_card

    readme = (ROOT / "README.md").read_text()
    example = readme.split("\n## Cards\n", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    spec = parse_card(example, name="readme-example").spec
    assert spec.data.source == "zoo:mnist-5k" and spec.train.epochs == 30 and spec.sampler.name == "ddim"
    assert spec.weights.repo == "org/name" and spec.decoder.arguments()["likelihood"] == "bernoulli"
    table = readme.split("| card field / flag | default | meaning |", 1)[1].split("\n\n", 1)[0]
    documented = {name for row in table.splitlines()[2:] for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])}
    train_fields = {f.name for f in dataclasses.fields(TrainSpec)}
    assert {"steps", "epochs", "lr", "ema", "seed", "stream_buffer"} <= documented <= train_fields | {
        "adam", "adamw", "constant", "cosine", "linear", "no", "bf16", "fp16", "cpu", "mps"}


def test_a_built_card_with_tensor_arguments_gives_its_spec():
    """zoo.build's cards carry a module's config as written (a tensor's == is not a bool): the spec still follows."""
    import torch

    from zoo.cards import Card, validate_zoo

    block = {"data": {"source": "unspecified", "shape": [1, 8, 8]}, "latent": {"shape": [2]},
             "encoder": {"module": "pkg.mod:Enc", "args": {"init": torch.ones(3), "hidden": (4, 4)}},
             "decoder": {"name": "mlp"}, "prior": {"name": "standard-normal"}}
    card = Card("byo", validate_zoo(block, "zoo.build('byo')"))
    for _ in range(2):   # parsed, then compared with the cached copy
        name, args = card.component("encoder")
        assert name == "pkg.mod:Enc" and torch.equal(args["init"], torch.ones(3)) and args["hidden"] == (4, 4)


# Modules outside zoo/cards/ that may touch the raw ``zoo`` block by key, because they write or show it as written
# (every read of a value goes through the typed card, ``card.spec``).
RAW_BLOCK_WRITERS = {
    "zoo/posthoc.py": "writes the fitted model's card: the old block as written, its old prior kept as provenance",
    "zoo/quality/evaluate.py": "merges sample-quality results into zoo.results as written (config.json, card file)",
    "zoo/cli/commands.py": "zoo info prints the train, sampler and results blocks as the card writes them",
    "zoo/cli/fit_prior.py": "zoo fit-prior --json prints the fitted card's prior and results blocks as written",
    "zoo/training/resume.py": "the checkpoint's architecture fingerprint hashes the blocks as written (a typed "
                              "rebuild would change it and refuse to resume the runs written before)",
}


def raw_block_reads(source: str) -> list[str]:
    """Where ``source`` reads a card's raw ``zoo`` block (or a model's ``config``, the same block) by key:
    ``X.zoo[...]``, ``X.zoo.get(...)`` (any mapping method), ``X["zoo"]``, ``X.config[...]`` / ``X.config.get(...)``,
    and the same through a name bound to ``X.zoo``."""
    tree = ast.parse(source)
    aliases = set()
    for node in ast.walk(tree):  # z = card.zoo;  s, z = card.spec, card.zoo
        if isinstance(node, ast.Assign):
            pairs = [(node.targets[0], node.value)]
            if isinstance(node.targets[0], ast.Tuple) and isinstance(node.value, ast.Tuple):
                pairs = list(zip(node.targets[0].elts, node.value.elts))
            aliases |= {t.id for t, v in pairs if isinstance(t, ast.Name) and isinstance(v, ast.Attribute)
                        and v.attr == "zoo"}

    def is_block(node: ast.AST) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr in ("zoo", "config")
                or isinstance(node, ast.Name) and node.id in aliases)

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and (
                is_block(node.value) or (isinstance(node.slice, ast.Constant) and node.slice.value == "zoo")):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and is_block(node.func.value)
              and node.func.attr in ("get", "items", "keys", "values", "pop", "setdefault", "copy")):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_the_raw_block_scan_finds_each_way_of_reading_it():
    reads = raw_block_reads('a = card.zoo["data"]\nb = card.zoo.get("weights")\nc = config["zoo"]\n'
                            'd = model.config.get("sampler")\nz = card.zoo\ne = z["prior"]\n'
                            'f = card.spec.data.source\ng = self.config.lr\nzoo = {}\nzoo["train"] = {}\n')
    assert [r.split(":")[0] for r in reads] == ["line 1", "line 2", "line 3", "line 4", "line 6"], reads


def test_nothing_outside_the_cards_reads_the_raw_block_by_key():
    """Every module under zoo/ outside zoo/cards/ reads the card's values as attributes of the typed card
    (``card.spec``); only the named writers touch the raw block, to write or show it as written."""
    offenders, seen = [], set()
    for path in sorted((ROOT / "zoo").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("zoo/cards/"):
            continue
        reads = raw_block_reads(path.read_text(encoding="utf-8"))
        if reads and rel in RAW_BLOCK_WRITERS:
            seen.add(rel)
        elif reads:
            offenders += [f"{rel} {r}" for r in reads]
    assert not offenders, "read the typed card (card.spec) instead:\n" + "\n".join(offenders)
    assert seen == set(RAW_BLOCK_WRITERS), f"allowed but no longer needed: {sorted(set(RAW_BLOCK_WRITERS) - seen)}"


def test_with_fields_sets_a_field_or_a_block_and_checks_it():
    from zoo.cards import parse_card

    card = parse_card(GOOD, name="tiny")
    new = card.with_fields({"data.source": "zoo:mnist-5k", "train": {"steps": 3}, "objective.beta": 0.5})
    assert new.spec.data.source == "zoo:mnist-5k" and new.spec.data.shape == (1, 8, 8)
    assert new.spec.train.steps == 3 and new.spec.train.lr == 1e-3  # a block is replaced whole
    assert new.spec.objective.beta == 0.5 and new.zoo["objective"] == {"beta": 0.5}
    assert card.spec.data.source == "zoo:digits" and card.spec.train.steps == 5  # the original is unchanged
    with pytest.raises(CardError, match=r"card 'tiny': field 'zoo.train.lr': must be a positive number"):
        card.with_fields({"train.lr": "fast"})


def test_the_model_runs_the_typed_objective_the_assembler_hands_it():
    """LatentModel parses no card: it runs the ObjectiveSettings (the typed zoo.objective) it was built with."""
    import torch

    from zoo import contracts as c
    from zoo.assemble import build_model
    from zoo.cards import parse_card

    card = parse_card(GOOD.replace("objective: {beta: 2.0}", "objective: {beta: 1.0, iwae_k: 3}"), name="tiny")
    model = build_model(card)
    assert model.objective_settings is card.spec.objective and isinstance(model.objective_settings, ObjectiveSpec)
    assert all(hasattr(model.objective_settings, m) for m in ("iwae_k", "loss", "gradient", "arguments"))
    assert "ObjectiveSettings" in c.__all__
    x = torch.rand(4, 1, 8, 8)
    torch.manual_seed(0)
    loss, terms = model.objective(x)
    assert "iwae" in terms.extras and torch.allclose(loss, -terms.extras["iwae"].mean())
    model.config = {}  # the block as written is a record; the objective does not come from it
    torch.manual_seed(0)
    again, _ = model.objective(x)
    assert torch.equal(loss, again)
    plain = build_model(parse_card(GOOD, name="tiny"))
    torch.manual_seed(0)
    elbo_loss, elbo_terms = plain.objective(x)
    assert "iwae" not in elbo_terms.extras and plain.objective_settings.beta == 2.0
    assert torch.allclose(elbo_loss, (elbo_terms.distortion + 2.0 * elbo_terms.rate).mean())

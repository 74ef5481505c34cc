"""The weights shipped with the cards trained on embedded data (``zoo.weights.packaged``).

Every card on ``zoo:mnist-5k`` or ``zoo:digits`` loads with ``pretrained=True`` offline, from a float32
safetensors file inside the package (all together at most 20 MB), sha256-pinned in the card, whose
results were measured from exactly that file (``tools/ship_weights.py``).
"""
from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import zoo
from zoo.cards.measured import measure_results
from zoo.errors import CardError, WeightsError

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hub_fixtures import register_card_folder, set_offline  # noqa: E402
from make_cards import card_markdown  # noqa: E402
from tools.ship_weights import BUDGET_BYTES, embedded_cards  # noqa: E402

EMBEDDED = embedded_cards()


def _packaged(name: str) -> Path:
    card = zoo.get_card(name)
    return card.path.parent / card.zoo["weights"]["packaged"]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No Hub: HF_HUB_OFFLINE=1 and an empty HF_HOME."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    set_offline(monkeypatch)


# -- what is shipped -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", EMBEDDED)
def test_every_embedded_card_ships_float32_weights_pinned_by_sha256(name):
    from safetensors import safe_open

    card = zoo.get_card(name)
    spec = card.zoo.get("weights") or {}
    assert spec.get("packaged") == f"weights/{name}.safetensors", f"{name}: no packaged weights"
    path = _packaged(name)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == spec["sha256"]
    with safe_open(path, "pt") as f:
        dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
    assert {d for d in dtypes if d.startswith(("F", "BF"))} == {"F32"}, dtypes  # counters may be integers
    results = card.zoo.get("results") or {}
    assert results.get("eval_seed") is not None and results.get("elbo") is not None
    assert results.get("command", "").startswith(f"zoo train {name} ")
    assert spec["repo"] == f"latent-zoo/{name}" and "revision" not in spec  # not published yet: nothing pinned


def test_all_shipped_weights_fit_the_budget():
    total = sum(_packaged(n).stat().st_size for n in EMBEDDED)
    assert total <= BUDGET_BYTES, f"{total / 1e6:.2f} MB shipped"


def test_zoo_list_pretrained_is_the_cards_with_weights():
    pretrained = zoo.list_models(pretrained=True)
    assert set(EMBEDDED) <= set(pretrained)
    assert "vae-cifar10" in zoo.list_models() and "vae-cifar10" not in pretrained   # a card without weights
    assert zoo.list_models("vae-*", pretrained=True) == [n for n in pretrained if n.startswith("vae-")]


def test_cli_list_pretrained(capsys):
    from zoo.cli import main

    assert main(["list", "--pretrained"]) == 0
    listed = capsys.readouterr().out.split()
    assert "vae-mnist" in listed and "ddpm-digits" in listed and "vae-cifar10" not in listed


# -- loading offline, and what the weights do ----------------------------------------------------------------
def _classifier(spec: str):
    """A logistic regression on the training split and the training images as [N, D] in [0, 1]."""
    from sklearn.linear_model import LogisticRegression

    from zoo.data import load_dataset, load_tensors

    images = load_tensors(spec, "train").float().div(255).flatten(1).numpy()
    labels = np.asarray(load_dataset(spec, "train")["label"])
    return LogisticRegression(max_iter=300).fit(images, labels), images


def _recognisable(images: np.ndarray, classifier, train: np.ndarray, test: np.ndarray) -> tuple[int, float]:
    """(classes the classifier finds among ``images``, median distance to the nearest training image relative
    to the test images' own median nearest-training distance)."""
    def nearest(x):
        return torch.cdist(torch.from_numpy(x), torch.from_numpy(train)).min(1).values.median().item()

    classes = len(set(classifier.predict(images).tolist()))
    return classes, nearest(images) / nearest(test)


@pytest.mark.parametrize("name", ["vae-mnist", "hvae-digits", "gmm-digits", "ddpm-digits"])
def test_pretrained_loads_offline_and_samples_digits(name, offline):
    from zoo.data import load_tensors

    model = zoo.load(name)
    assert model.info["source"] == "packaged" and model.info["sha256"] == zoo.get_card(name).zoo["weights"]["sha256"]
    spec = model.card.zoo["data"]["source"]
    classifier, train = _classifier(spec)
    test = load_tensors(spec, "test").float().div(255).flatten(1).numpy()
    options = {"sampler": "ddim", "steps": 50} if "ddim" in zoo.contracts.declared_samplers(model.prior) else {}
    samples = model.sample(100, generator=torch.Generator().manual_seed(0), **options).flatten(1).numpy()
    classes, ratio = _recognisable(samples, classifier, train, test)
    assert classes >= 8 and ratio < 1.6, (classes, ratio)
    noise = np.random.default_rng(0).random(samples.shape, dtype=np.float32)
    noise_classes, noise_ratio = _recognisable(noise, classifier, train, test)
    assert noise_ratio > 2.5, noise_ratio  # the same check tells noise from digits


@pytest.mark.parametrize("name", ["gmm-digits", "vae-digits"])
def test_card_results_are_measured_from_the_shipped_weights(name, offline):
    card = zoo.get_card(name)
    measured = measure_results(zoo.load(name), card)
    for key in ("elbo", "distortion", "rate", "nll", "mutual_information", "marginal_kl", "active_units"):
        expected = card.zoo["results"][key]
        assert measured[key] == pytest.approx(expected, abs=2e-3 + 1e-4 * abs(expected)), key


def test_cli_sample_from_a_name_offline(offline, tmp_path):
    from PIL import Image

    from zoo.cli import main

    assert main(["sample", "vae-digits", "--n", "16", "--out", str(tmp_path / "grid.png")]) == 0
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.std() > 10  # an image with content, not a blank


# -- the packaged file and the Hub ---------------------------------------------------------------------------
def _copy_card(tmp_path: Path, name: str, new: str, **weights) -> Path:
    """``name``'s card and packaged file under ``tmp_path/cards`` as card ``new``, its weights block updated."""
    card = zoo.get_card(name)
    folder = tmp_path / "cards"
    (folder / "weights").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_packaged(name), folder / "weights" / f"{new}.safetensors")
    block = {**card.zoo["weights"], "packaged": f"weights/{new}.safetensors", **weights}
    fields = {k: v for k, v in card.zoo.items() if k not in ("weights", "results")}
    (folder / f"{new}.md").write_text(card_markdown(new, base=None, weights=block, **fields))
    return folder


def test_a_damaged_packaged_file_is_refused_naming_it(tmp_path, fresh_registry, offline):
    folder = _copy_card(tmp_path, "vae-digits", "vae-digits-copy")
    register_card_folder(folder, "copy")
    assert zoo.load("vae-digits-copy").info["source"] == "packaged"
    path = folder / "weights" / "vae-digits-copy.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"vae-digits-copy\.safetensors have sha256 .* damaged"):
        zoo.load("vae-digits-copy")
    path.unlink()
    with pytest.raises(WeightsError, match=r"packaged weights .*vae-digits-copy\.safetensors are missing"):
        zoo.load("vae-digits-copy")
    assert zoo.load("vae-digits-copy", pretrained=False).info.get("source") is None  # untrained still builds


def test_a_pinned_hub_revision_is_preferred_with_the_packaged_file_as_offline_fallback(
        local_hub, tmp_path, fresh_registry, monkeypatch):
    from zoo.hub.publish import push

    shipped = zoo.load("vae-digits")
    run = tmp_path / "run"
    shipped.save_pretrained(run)
    pushed = push(run, "someone/vae-digits")["weights"]
    folder = _copy_card(tmp_path, "vae-digits", "vae-digits-pinned", **pushed)
    shutil.copyfile(run / "model.safetensors", folder / "weights" / "vae-digits-pinned.safetensors")  # same bytes
    register_card_folder(folder, "pinned")

    online = zoo.load("vae-digits-pinned")
    assert online.info["source"] == "hub" and online.info["revision"] == pushed["revision"]
    assert all(torch.equal(a, b) for a, b in zip(online.state_dict().values(), shipped.state_dict().values()))

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    set_offline(monkeypatch)
    fallback = zoo.load("vae-digits-pinned")
    assert fallback.info["source"] == "packaged" and fallback.info["sha256"] == pushed["sha256"]


@pytest.mark.parametrize("weights, field", [
    ({"packaged": "../escape.safetensors", "sha256": "0" * 64}, "weights.packaged"),
    ({"packaged": "weights/model.bin", "sha256": "0" * 64}, "weights.packaged"),
    ({"packaged": "weights/model.safetensors"}, "weights.sha256"),
    ({"packaged": "weights/model.safetensors", "sha256": "abc"}, "weights.sha256"),
])
def test_bad_packaged_fields_are_named(make_card, weights, field):
    with pytest.raises(CardError, match=field.replace(".", r"\.")):
        make_card("bad-weights", weights=weights)


# -- the catalogue -------------------------------------------------------------------------------------------
def test_readme_tables_are_generated_from_the_cards():
    from zoo.cards.table import RESULTS_START, TABLE_END, TABLE_START, with_model_table

    readme = (ROOT / "README.md").read_text()
    assert TABLE_START in readme and TABLE_END in readme and RESULTS_START in readme, "README lacks its tables"
    assert with_model_table(readme) == readme, "README's tables are stale: run python tools/model_table.py"


def test_results_table_has_a_row_per_embedded_card_one_table_per_data_space():
    from zoo.cards.table import card_space, results_table

    sections = results_table().split("\n\n**")
    seen = []
    for section in sections:
        label = section.splitlines()[0].strip("*")
        rows = [r for r in section.splitlines() if r.startswith("| `")]
        names = [r.split("|")[1].strip(" `") for r in rows]
        assert names == sorted(names), f"table {label!r} is not sorted by name"
        for name in names:  # a number of another space is never in this table
            assert card_space(zoo.get_card(name)).label == label, f"{name} in the table of {label!r}"
        if "continuous" not in label:  # every discrete space carries its no-latent baselines
            assert any(r.startswith("| *baseline: ") for r in section.splitlines()), label
        seen += names
    assert sorted(seen) == sorted(EMBEDDED)
    vae = next(r for r in results_table().splitlines() if r.startswith("| `vae-mnist`"))
    assert f"{zoo.get_card('vae-mnist').zoo['results']['elbo']:.2f} ± " in vae and "(IWAE, k=100)" in vae


def test_model_table_rows_carry_licence_weights_and_results():
    from zoo.cards.table import model_table

    rows = {line.split("|")[1].strip(" `"): line for line in model_table().splitlines()[2:]}
    assert set(rows) == set(zoo.list_models())
    assert "packaged" in rows["vae-mnist"] and "apache-2.0" in rows["ddpm-cifar10"]
    assert "mit" in rows["sd-vae-ft-mse"]
    assert "not trained" in rows["vae-cifar10"] or "none" in rows["vae-cifar10"]
    card = yaml.safe_load((ROOT / "cards" / "vae-mnist.md").read_text().split("---")[1])
    assert f"{card['zoo']['results']['elbo']:.2f}" in rows["vae-mnist"]


def test_the_cards_command_reproduces_its_shipped_weights_bit_for_bit(tmp_path):
    """`zoo train vae-digits` with the card's recipe gives exactly the shipped weights and ELBO: a change to the
    trainer that moves the last bits (fused Adam as a default did) breaks every card's 'command that reproduces it'."""
    import torch
    from safetensors.torch import load_file

    card = zoo.get_card("vae-digits")
    zoo.train("vae-digits", data=card.zoo["data"]["source"], out=tmp_path / "run", quiet=True)
    trained = load_file(str(tmp_path / "run" / "model.safetensors"))
    shipped = load_file(str(_packaged("vae-digits")))
    assert trained.keys() == shipped.keys()
    assert all(torch.equal(trained[k], shipped[k]) for k in shipped)
    results = zoo.read_card(tmp_path / "run" / "README.md").zoo["results"]
    assert results["elbo"] == card.zoo["results"]["elbo"]

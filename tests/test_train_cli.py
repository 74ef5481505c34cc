"""`zoo train / sample / diagnose / info / list` end to end, and the bad inputs they meet."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image

import zoo
from zoo.cli import main
from zoo.errors import WeightsError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "vae"
    assert main(["train", "vae-mnist", "--data", "zoo:mnist-5k", "--out", str(out), "--steps", "40",
                 "--quiet", "--seed", "3"]) == 0
    return out


def test_train_writes_weights_config_and_card_with_measured_results(run):
    assert (run / "model.safetensors").is_file() and (run / "config.json").is_file()
    card = zoo.read_card(run / "README.md")
    results = card.zoo["results"]
    assert results["steps"] == 40 and results["seed"] == 3 and results["dataset"] == "zoo:mnist-5k"
    assert results["elbo"] < 0 and results["nll"] > 0 and "command" in results
    metrics = {m["type"] for m in card.to_markdown().split("model-index")[1:2] and
               __import__("yaml").safe_load(card.to_markdown().split("---")[1])["model-index"][0]["results"][0]["metrics"]}
    assert {"elbo", "nll", "mutual_information", "active_units"} <= metrics
    config = json.loads((run / "config.json").read_text())
    assert config["zoo"]["encoder"] == zoo.get_card("vae-mnist").zoo["encoder"]  # the card's own architecture


def test_load_folder_reproduces_outputs(run):
    a = zoo.load(run)
    b = zoo.load(str(run))
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(a.reconstruct(x), b.reconstruct(x))
    torch.manual_seed(0)
    ea = a.elbo(x).distortion
    torch.manual_seed(0)
    assert torch.equal(ea, b.elbo(x).distortion)


def test_sample_writes_png_grid(run, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["sample", str(run), "--n", "16", "--out", str(out), "--scale", "1"]) == 0
    img = Image.open(out)
    assert img.size == (4 * 30 + 2, 4 * 30 + 2)  # 4x4 images of 28 px with 2 px padding


def test_diagnose_command_reports_every_term(run, capsys):
    assert main(["diagnose", str(run), "--data", "zoo:mnist-5k", "--k", "5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("elbo", "distortion", "rate", "mutual_information", "marginal_kl", "active_units",
                "kl_per_dim", "nll", "nll_bpd", "iwae_k", "mi_estimator"):
        assert report[key] is not None, key
    assert abs(report["rate"] - report["mutual_information"] - report["marginal_kl"]) < 1e-3


def test_diagnose_plot_draws_kl_per_dimension_and_active_units(run, tmp_path, capsys):
    out = tmp_path / "units.png"
    assert main(["diagnose", str(run), "--data", "zoo:mnist-5k", "--k", "2", "--plot", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    img = Image.open(out)
    assert img.format == "PNG" and img.size[0] > img.size[1] > 100  # two panels side by side


def test_list_and_info(capsys):
    assert main(["list", "vae-*", "--names"]) == 0
    assert capsys.readouterr().out.split() == zoo.list_models("vae-*")
    assert main(["info", "beta-vae-mnist"]) == 0
    out = capsys.readouterr().out
    assert "beta=4.0" in out and "standard-normal" in out and "zoo:mnist-5k" in out


def test_unknown_model_in_cli_is_a_clear_error(capsys):
    assert main(["info", "vae-mnits"]) == 2
    assert "did you mean 'vae-mnist'" in capsys.readouterr().err


def test_missing_data_path_is_named(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["train", "vae-mnist", "--data", str(missing), "--out", str(tmp_path / "o"), "--steps", "1", "--quiet"]) == 1
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_data_that_does_not_fit_the_model_is_named(tmp_path, capsys):
    assert main(["train", "vae-mnist", "--data", "zoo:digits", "--out", str(tmp_path / "o"), "--steps", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "zoo:digits" in err and "[1, 8, 8]" in err and "[1, 28, 28]" in err


def test_pretrained_without_published_weights_says_what_to_do():
    with pytest.raises(WeightsError, match="pretrained=False"):
        zoo.load("vae-cifar10")  # a card with no weights (vae-mnist ships its own)


def test_missing_and_corrupted_weights(run, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(WeightsError, match="corrupted"):
        zoo.load(broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(WeightsError, match="does not exist"):
        zoo.load(broken)


def test_weights_that_do_not_fit_the_architecture_list_the_keys(run, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(run, other)
    config = json.loads((other / "config.json").read_text())
    config["zoo"]["latent"]["shape"] = [8]
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match=r"shape mismatches.*encoder\.head\.linear"):
        zoo.load(other)


def test_card_image_key_picks_the_column_to_train_on(tmp_path):
    """A data set with two image columns: the card's data.image_key decides which one is modelled."""
    import datasets
    import numpy as np

    from make_cards import make_card
    from zoo.errors import ShapeError
    from zoo.training import train

    rng = np.random.default_rng(0)
    rows = {"thumb": [rng.integers(0, 255, (4, 4), dtype=np.uint8) for _ in range(40)],
            "pixels": [rng.integers(0, 255, (8, 8), dtype=np.uint8) for _ in range(40)]}
    ds = datasets.Dataset.from_dict(rows, features=datasets.Features({"thumb": datasets.Image(),
                                                                      "pixels": datasets.Image()}))
    folder = tmp_path / "two-columns"
    datasets.DatasetDict({"train": ds.select(range(32)), "test": ds.select(range(32, 40))}).save_to_disk(str(folder))
    spec = dict(latent={"shape": [2]}, encoder={"name": "mlp", "hidden": [16]},
                decoder={"name": "mlp", "hidden": [16], "likelihood": "bernoulli"},
                train={"steps": 2, "batch_size": 16, "eval_iwae_k": 2})
    card = make_card("two-columns", data={"source": str(folder), "shape": [1, 8, 8], "image_key": "pixels"}, **spec)
    result = train(card, out=tmp_path / "run", progress=False)
    assert result.report["n"] == 8
    without = make_card("two-columns", data={"source": str(folder), "shape": [1, 8, 8]}, **spec)
    with pytest.raises(ShapeError, match=r"\[1, 4, 4\]"):
        train(without, out=tmp_path / "run2", progress=False)

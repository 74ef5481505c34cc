"""Sample quality offline (zoo.quality): the shipped digits feature network through torch-fidelity, the named
errors for Inception weights and pinned files, the feature-network hook, and results in the card."""
from __future__ import annotations

import dataclasses
import types

import pytest
import torch

pytest.importorskip("torch_fidelity")

from zoo.data import load_tensors  # noqa: E402
from zoo.errors import WeightsError  # noqa: E402
from zoo.quality.features import feature_network, feature_network_for  # noqa: E402
from zoo.quality.fidelity import INCEPTION_ENV, INCEPTION_URL, fidelity_metrics, inception_weights  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return load_tensors("zoo:digits", "train"), load_tensors("zoo:digits", "test")


def test_digits_fid_is_small_between_splits_and_large_for_noise(digits):
    train, test = digits
    net = feature_network_for("zoo:digits")
    assert net is not None and net.name == "digits-cnn" and net.weights.stat().st_size <= 300_000
    same = fidelity_metrics(test, train, features=net)
    g = torch.Generator().manual_seed(0)
    shuffled = torch.stack([x.flatten()[torch.randperm(64, generator=g)].view(1, 8, 8) for x in test])
    noise = torch.randint(0, 256, test.shape, generator=g, dtype=torch.uint8)
    bad = [fidelity_metrics(x, train, features=net, metrics=("fid", "prc")) for x in (shuffled, noise)]
    assert same["fid"] < 3.0, same
    assert all(b["fid"] > 30 * same["fid"] for b in bad), (same, bad)
    assert same["precision"] > 0.8 and same["recall"] > 0.8
    assert all(b["precision"] < 0.2 for b in bad)
    assert same["features_sha256"] == net.sha256 and "digits-cnn" in same["features"]
    assert "kid" in same and "kid" not in bad[0]


def test_missing_inception_file_names_the_path_and_the_url(tmp_path, monkeypatch):
    missing = tmp_path / "weights-inception.pth"
    with pytest.raises(WeightsError) as e:
        inception_weights(missing)
    assert str(missing) in str(e.value) and INCEPTION_URL in str(e.value)
    monkeypatch.setenv(INCEPTION_ENV, str(missing))
    with pytest.raises(WeightsError, match=INCEPTION_ENV):
        fidelity_metrics(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(4, 1, 8, 8, dtype=torch.uint8),
                         features="inception")
    monkeypatch.delenv(INCEPTION_ENV)
    with pytest.raises(WeightsError, match="--inception-weights"):
        inception_weights(None)
    present = tmp_path / "w.pth"
    present.write_bytes(b"x")
    assert inception_weights(present) == present


def test_feature_file_with_another_sha256_is_a_named_error(tmp_path):
    net = feature_network("digits-cnn")
    copy = tmp_path / "digits-features.safetensors"
    copy.write_bytes(net.weights.read_bytes() + b" ")
    with pytest.raises(WeightsError, match=r"feature network 'digits-cnn': .*has sha256 [0-9a-f]{64}, expected "
                                           + net.sha256):
        dataclasses.replace(net, weights=copy).load()
    with pytest.raises(WeightsError, match="is missing"):
        dataclasses.replace(net, weights=tmp_path / "absent.safetensors").load()


def test_register_feature_networks_hook(fresh_registry):
    from zoo.hookspecs import hookimpl

    net = dataclasses.replace(feature_network("digits-cnn"), name="other-cnn", data="zoo:elsewhere")
    plugin = types.ModuleType("feat")
    plugin.register_feature_networks = hookimpl(lambda register: register("other-cnn", net))
    fresh_registry.add_plugin(plugin)
    assert feature_network("other-cnn") is net and feature_network_for("zoo:elsewhere") is net
    from zoo.errors import UsageError

    with pytest.raises(UsageError, match="no feature network 'nope'; registered: .*other-cnn"):
        feature_network("nope")


def test_evaluate_writes_fid_with_its_features_into_the_run_card(tmp_path):
    from tiny_runs import card_text, train_and_reload

    from zoo.cards import read_card
    from zoo.cards.hub_schema import model_index
    from zoo.cli import main

    text = card_text(latent=4, encoder="{name: mlp, hidden: [32]}",
                     decoder="{name: mlp, hidden: [32], likelihood: bernoulli}", prior="{name: standard-normal}")
    train_and_reload(text, tmp_path / "run")
    assert main(["evaluate", str(tmp_path / "run"), "--data", "zoo:digits", "--n", "100"]) == 0
    card = read_card(tmp_path / "run" / "README.md")
    results = card.zoo["results"]
    assert results["fid"] > 0 and results["quality_n"] == 100 and "digits-cnn" in results["quality_features"]
    metrics = {m["type"]: m for m in model_index(card)[0]["results"][0]["metrics"]}
    assert metrics["fid"]["value"] == results["fid"] and "digits-cnn" in metrics["fid"]["args"]["features"]
    assert {"precision", "recall", "kid", "elbo"} <= set(metrics)
    text = (tmp_path / "run" / "README.md").read_text()
    assert "model-index" in text
    from zoo.cards.hub_schema import check_hub_metadata

    check_hub_metadata(text, source="README.md")  # the Hub can read the metrics


def test_inception_features_come_from_the_local_file_and_record_its_sha256(tmp_path, monkeypatch):
    """The Inception path end to end with a stand-in weights file (random weights: no download, no real file),
    pinned in place of the published sha256 (zoo.quality.inception) for this test."""
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as fe

    from zoo.quality.features import sha256_of

    def no_download(*args, **kwargs):
        raise AssertionError("torch-fidelity tried to download the Inception weights")

    with mock.patch.object(torch.nn.Module, "load_state_dict", lambda self, sd, *a, **k: None), \
            mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}):
        stand_in = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path / "inception.pth"
    torch.save(stand_in.state_dict(), path)
    monkeypatch.setattr("zoo.quality.inception.INCEPTION_SHA256", sha256_of(path))
    monkeypatch.setattr("zoo.quality.inception.INCEPTION_BYTES", path.stat().st_size)
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randint(0, 256, (6, 1, 8, 8), generator=g, dtype=torch.uint8) for _ in range(2))
    with mock.patch.object(fe, "load_state_dict_from_url", no_download):
        out = fidelity_metrics(a, b, features="inception", inception_path=path, metrics=("fid",))
    assert out["features_sha256"] == sha256_of(path) and out["features_file"] == str(path)
    assert "inception" in out["features"] and out["fid"] >= 0

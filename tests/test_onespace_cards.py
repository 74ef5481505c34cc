"""The 8-bit VAE and hierarchical VAE on zoo:digits: loaded from their packaged files, re-measured there, on the
space of ddpm-digits and below the per-pixel categorical baseline."""
from __future__ import annotations

import pytest

import zoo
from zoo.baselines import baselines
from zoo.cards.measured import measure_results
from zoo.data_space import data_space

CARDS = ["vae-digits-8bit", "hvae-digits-8bit"]


@pytest.mark.parametrize("name", CARDS)
def test_8bit_card_loads_from_its_packaged_file_and_beats_the_baselines(name, monkeypatch):
    pytest.importorskip("sklearn")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    card = zoo.get_card(name)
    path = card.path.parent / card.zoo["weights"]["packaged"]
    assert path.stat().st_size <= 500_000
    model = zoo.load(name, pretrained=True)
    assert model.info["source"] == "packaged" and model.info["sha256"] == card.zoo["weights"]["sha256"]
    assert data_space(model, "zoo:digits") == data_space(zoo.load("ddpm-digits", pretrained=True), "zoo:digits")
    measured = measure_results(model, card)
    for key in ("elbo", "distortion", "rate", "nll"):
        expected = card.zoo["results"][key]
        assert measured[key] == pytest.approx(expected, abs=2e-3 + 1e-4 * abs(expected)), key
    cat = {r["model"]: r for r in baselines("zoo:digits", "8-bit")}["categorical-levels"]
    se = measured["elbo_se"] / (64 * 0.6931471805599453)
    assert measured["elbo_bpd"] + 3 * se < cat["bpd"] - 3 * cat["bpd_se"], (measured["elbo_bpd"], cat["bpd"])

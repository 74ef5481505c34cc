"""MIG (zoo.disentanglement): ~1 when each latent is one factor, ~0 for unrelated latents; in diagnose and sweep."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from zoo.disentanglement import discrete_entropy, discrete_mutual_information, discretize, mig


@pytest.fixture(scope="module")
def factors():
    from zoo.data import load_factors

    return load_factors("zoo:shapes", "test")


def test_discrete_estimators_match_closed_forms():
    a = np.repeat(np.arange(4), 25)                       # uniform over 4 values
    assert discrete_entropy(a) == pytest.approx(math.log(4))
    assert discrete_mutual_information(a, a) == pytest.approx(math.log(4))
    b = np.tile(np.arange(5), 20)                         # independent of a on this grid: exactly 0
    assert discrete_mutual_information(a, b) == pytest.approx(0.0, abs=1e-12)
    assert discrete_mutual_information(a, a // 2) == pytest.approx(math.log(2))   # a coarser copy keeps 1 bit
    codes = discretize(np.linspace(0, 1, 100)[:, None], bins=10)
    assert np.bincount(codes[:, 0]).tolist() == [10] * 10


def test_mig_is_near_one_when_the_latents_are_the_factors(factors):
    rng = np.random.default_rng(0)
    v = factors.values
    # an "encoder" that outputs the factors: permuted, rescaled, plus five dead dimensions of tiny noise
    z = np.concatenate([v[:, [3, 1, 4, 0, 2]] * [2.0, -1.0, 3.0, 0.5, 1.0], 1e-3 * rng.standard_normal((len(v), 5))], 1)
    out = mig(z, v, factors.names)
    assert out["mig"] > 0.9, out["mig_per_factor"]
    assert {k: d[0] for k, d in out["mig_dims"].items()} == {"pos_x": 0, "scale": 1, "pos_y": 2, "shape": 3,
                                                             "orientation": 4}
    assert all(h > 0 for h in out["factor_entropy"].values())
    assert out["factor_entropy"]["shape"] == pytest.approx(math.log(3))


def test_mig_is_near_zero_for_unrelated_or_duplicated_latents(factors):
    rng = np.random.default_rng(1)
    v = factors.values
    assert mig(rng.standard_normal((len(v), 10)), v, factors.names)["mig"] < 0.05
    # every factor held by two dimensions alike: informative, but no gap
    twice = np.concatenate([v, v], 1)
    assert mig(twice, v, factors.names)["mig"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="at least 2 latent dimensions"):
        mig(v[:, :1], v)
    with pytest.raises(ValueError, match="same N"):
        mig(v[:10], v)


def _tiny_card(make_card):
    return make_card("tiny-shapes", data={"source": "zoo:shapes", "shape": [1, 32, 32]}, latent={"shape": [4]},
                     encoder={"name": "mlp", "hidden": [32]},
                     decoder={"name": "mlp", "hidden": [32], "likelihood": "bernoulli"},
                     prior={"name": "standard-normal"})


def test_diagnose_reports_mig_of_the_posterior_means(make_card, factors):
    import zoo
    from zoo.assemble import build_model
    from zoo.data import load_tensors
    from zoo.diagnostics import format_report

    model = build_model(_tiny_card(make_card))
    report = zoo.diagnose(model, "zoo:shapes", split="test", iwae_k=0, max_points=300)
    x = load_tensors("zoo:shapes", "test")[:300]
    with torch.no_grad():
        means = model.encode(x).mean.double().numpy()
    expected = mig(means, factors.values[:300], factors.names)
    assert report["mig"] == pytest.approx(expected["mig"]) and 0 <= report["mig"] <= 1
    assert set(report["mig_per_factor"]) == set(factors.names)
    assert "MIG" in format_report(report) and "histogram" in report["mig_estimator"]
    assert "mig" not in zoo.diagnose(model, x, iwae_k=0)                       # images alone: no factors


def test_sweep_on_shapes_adds_mig_to_table_and_plots(make_card, tmp_path):
    from zoo.training.sweep import sweep

    rows = sweep(_tiny_card(make_card), [1.0, 8.0], data="zoo:shapes", out=tmp_path, split="test", steps=5)
    assert all(0 <= r["mig"] <= 1 and set(r["mig_per_factor"]) == {"shape", "scale", "orientation", "pos_x",
                                                                      "pos_y"} for r in rows)
    table = list(csv.DictReader(open(tmp_path / "sweep.csv")))
    assert [float(t["mig"]) for t in table] == pytest.approx([r["mig"] for r in rows])
    assert "| MIG |" in (tmp_path / "sweep.md").read_text()
    assert (tmp_path / "mig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_vae_shapes_card_ships_small_weights_and_its_mig_remeasures():
    import zoo

    card = zoo.get_card("vae-shapes")
    weights = card.path.parent / card.zoo["weights"]["packaged"]
    assert weights.stat().st_size <= 1_000_000
    model = zoo.load("vae-shapes")
    assert model.info["source"] == "packaged"
    report = zoo.diagnose(model, "zoo:shapes", split="test", iwae_k=0,   # MIG uses the means: no randomness
                           mi_split="same")                               # (nor the split of the I_q terms)
    results = card.zoo["results"]
    assert round(report["mig"], 4) == results["mig"]
    assert {k: round(v, 4) for k, v in report["mig_per_factor"].items()} == results["mig_per_factor"]

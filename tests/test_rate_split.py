"""One estimate per quantity (issue 19): the rate split I_q + TC + dimension-wise KL from the same paired
samples, never outside [0, rate], brackets never inverted, a saturation rule that marks I_q as a bound (and
then the marginal KL and TC as upper bounds), Monte Carlo KLs labelled and never negative."""
from __future__ import annotations

import math

import pytest
import torch

from zoo.assemble import build_model
from zoo.diagnostics import aggregate_posterior_split, diagnose, format_report, saturation
from zoo.distributions import DiagGaussian

from make_cards import make_card

INFORMATION = ("mutual_information", "mutual_information_upper", "index_code_mi", "total_correlation",
               "dimension_wise_kl", "marginal_kl", "marginal_kl_lower")


def collapsed_model(eps: float, seed: int = 0):
    """The tiny digits VAE with its encoder's head scaled to ``eps``: q(z|x) = N(eps * f(x), ~1), nearly the prior
    (a log-sigma head, so a raw output near 0 is a scale near 1)."""
    torch.manual_seed(seed)
    model = build_model(make_card(latent={"shape": [4]}, encoder={"head": "log-sigma"})).eval()
    with torch.no_grad():
        model.encoder.head.linear.weight.mul_(eps)
        model.encoder.head.linear.bias.zero_()
    return model


def assert_within_rate(r: dict, rate: float) -> None:
    for key in INFORMATION:
        v = r.get(key)
        if v is None:
            continue
        se = r.get(f"{key}_se") or 0.0
        assert -2 * se <= v <= rate + 2 * se, (key, v, se, rate)
        assert 0.0 <= v <= rate + 1e-12, (key, v, rate)          # the clipping rule: exactly in [0, rate]
    for d in r.get("kl_per_dim") or []:
        assert 0.0 <= d <= rate + 1e-9
    assert r["mutual_information"] <= r["mutual_information_upper"]           # never an inverted bracket
    assert r["marginal_kl_lower"] <= r["marginal_kl"]


@pytest.mark.parametrize("seed", range(4))
def test_a_collapsed_model_reports_every_term_within_zero_and_the_rate(seed):
    model = collapsed_model(0.02, seed)
    x = torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    r = diagnose(model, x, iwae_k=0, mi_samples=4, seed=seed)
    assert 0.0 < r["rate"] < 0.01, r["rate"]
    assert_within_rate(r, r["rate"])
    assert r["rate_kind"] == "exact KL"
    assert r["index_code_mi"] + r["total_correlation"] + r["dimension_wise_kl"] <= r["rate"] * 3 + 1e-9
    assert r["rate_split_sum"] == pytest.approx(r["rate"], abs=1e-6)       # the unclipped terms sum to the rate
    text = format_report(r)
    assert "index-code MI (= I_q)" in text


def correlated_linear_gaussian(n: int, seed: int = 0):
    """x ~ N(0, I_2), q(z|x) = N(A x, s^2 I): q(z) = N(0, S), S = A A^T + s^2 I, everything in closed form
    (the N draws of x are whitened, so the Monte Carlo error left is the estimators', not the data draw's)."""
    a = torch.tensor([[1.2, 0.0], [1.0, 0.6]], dtype=torch.float64)
    s = 0.6
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(1000 + seed), dtype=torch.float64)  # not the z stream
    x = x - x.mean(0)                     # whitened: the N points' own mean 0 and covariance I, as the population's
    x = x @ torch.linalg.inv(torch.linalg.cholesky(x.T @ x / n)).T
    q = DiagGaussian(x @ a.T, torch.full((n, 2), math.log(s), dtype=torch.float64))
    cov = a @ a.T + s ** 2 * torch.eye(2, dtype=torch.float64)
    logdet, var = float(torch.logdet(cov)), torch.diagonal(cov)
    truth = {"mutual_information": 0.5 * logdet - 2 * math.log(s),
             "total_correlation": 0.5 * float(var.log().sum()) - 0.5 * logdet,
             "marginal_kl": 0.5 * (float(cov.trace()) - 2 - logdet),
             "dimension_wise_kl": 0.5 * float((var - 1 - var.log()).sum())}
    truth["rate"] = truth["mutual_information"] + truth["marginal_kl"]
    return q, truth


def test_the_linear_gaussian_split_is_within_three_standard_errors_of_the_closed_form():
    model = build_model(make_card(latent={"shape": [2]})).eval()
    q, truth = correlated_linear_gaussian(1500)
    assert truth["total_correlation"] > 0.2 and truth["dimension_wise_kl"] > 0.1      # a real correlation to find
    rates = (model.prior.cross_entropy(q) - q.entropy()).double()
    rate = float(rates.mean())
    torch.manual_seed(0)
    r = aggregate_posterior_split(model, q, 8, rate=rate, rates=rates)
    assert not r["mi_saturated"] and r["marginal_kl_kind"] == "value" and r["total_correlation_kind"] == "value"
    for key in ("mutual_information", "total_correlation", "marginal_kl", "dimension_wise_kl"):
        se = r[f"{key}_se"]
        assert 0 < se < 0.1, (key, se)
        assert abs(r[key] - truth[key]) <= 3 * se, (key, r[key], truth[key], se)
    assert abs(rate - truth["rate"]) < 0.1


def test_index_code_mi_is_the_mutual_information():
    model = build_model(make_card(latent={"shape": [2]})).eval()
    q, _ = correlated_linear_gaussian(300, seed=1)
    rate = float((model.prior.cross_entropy(q) - q.entropy()).double().mean())
    torch.manual_seed(1)
    r = aggregate_posterior_split(model, q, 4, rate=rate)
    assert r["index_code_mi"] == r["mutual_information"]
    assert r["index_code_mi_se"] == r["mutual_information_se"]
    assert r["marginal_kl"] == pytest.approx(rate - r["mutual_information"])
    # TC + dimension-wise KL is the marginal KL (factorised prior): the same estimate, not a second one
    assert r["total_correlation"] + r["dimension_wise_kl"] == pytest.approx(r["marginal_kl"], abs=1e-9)


def test_the_saturation_rule():
    assert saturation(5.79, 10.32, 500) and "within 1 nat" in saturation(5.79, 10.32, 500)   # a saturated test split
    assert saturation(3.0, 4.5, 300) and "bracket" in saturation(3.0, 4.5, 300)
    assert saturation(3.34, 3.55, 300) is None                                              # vae-digits' card
    model = build_model(make_card(latent={"shape": [1]})).eval()
    x = torch.randn(200, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    q = DiagGaussian(10 * x, torch.full_like(x, math.log(0.01)))                             # I = 6.9 > log 200
    rate = float((model.prior.cross_entropy(q) - q.entropy()).double().mean())
    r = aggregate_posterior_split(model, q, 4, rate=rate)
    assert r["mi_saturated"] and r["mutual_information_kind"] == "lower bound"
    assert r["marginal_kl_kind"] == "upper bound" and r["total_correlation_kind"] == "upper bound"
    assert "SATURATED" in r["mi_estimator"] and "UPPER BOUND" in r["tc_estimator"]


def test_a_monte_carlo_kl_is_labelled_and_never_negative():
    """A mixture prior (as zoo fit-prior writes) has no closed-form KL: the rate is a labelled Monte Carlo KL
    with its SE, and a mean that noise pushes below 0 is reported as 0 with the estimate in the text."""
    clipped = 0
    for seed in range(6):
        model = collapsed_model(0.0, seed)
        model.prior = build_model(make_card(prior={"name": "mixture-of-gaussians", "components": 2})).prior
        with torch.no_grad():
            model.prior.means.fill_(0.0)
            model.prior.means[0, 0] = 0.01                          # KL(q||p) tiny, positive
            model.prior.log_scales.zero_()
        x = torch.rand(60, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
        r = diagnose(model, x, iwae_k=0, mi_samples=2, seed=seed)
        assert r["rate_kind"] == "Monte Carlo KL" and "Monte Carlo" in r["rate_estimator"]
        assert r["rate"] >= 0.0 and r["rate_se"] > 0
        assert_within_rate(r, r["rate"])
        clipped += "reported as 0" in r["rate_estimator"]
    assert clipped >= 1                                                # noise did go below 0, and was stated


@pytest.mark.slow
def test_the_saturation_rule_flags_beta_vae_mnist_on_its_test_split():
    import zoo

    model = zoo.load("beta-vae-mnist")
    r = diagnose(model, "zoo:mnist-5k", split="test", iwae_k=0, mi_split=None)
    assert r["mi_n"] == 500 and r["mi_split"] == "test"
    assert r["mi_saturated"] and r["mutual_information_kind"] == "lower bound"
    assert r["marginal_kl_kind"] == "upper bound" and r["total_correlation_kind"] == "upper bound"
    assert "I_q(x;z) >=" in format_report(r) and "KL(q(z)||p(z)) <=" in format_report(r)


@pytest.mark.slow
def test_diagnose_moves_saturated_information_terms_to_the_split_with_more_points():
    import zoo

    r = diagnose(zoo.load("beta-vae-mnist"), "zoo:mnist-5k", split="test", iwae_k=0)
    assert r["split"] == "test" and r["n"] == 500                              # ELBO, rate, ...: the test split
    assert r["mi_split"] == "train" and r["mi_n"] == 4500                       # the I_q terms: the train split's
    assert r["mi_first"]["saturated"] and r["mi_first"]["split"] == "test"
    assert r["mutual_information"] > r["mi_first"]["lower"] + 0.5               # more points, a higher lower bound
    assert r["marginal_kl"] == pytest.approx(r["mi_rate"] - r["mutual_information"])
    assert "I_q terms use split 'train'" in format_report(r)

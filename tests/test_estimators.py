"""Measurements a reviewer can trust: the paired MI estimator and its bracket, standard errors,
per-model seeds, the latent-diffusion bound, the GMM's exact numbers and honest labels."""
from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo.assemble import build_model
from zoo.diagnostics import aggregate_posterior_split, diagnose, format_report
from zoo.distributions import DiagGaussian

from make_cards import make_card


@pytest.fixture(scope="module")
def gaussian_model():
    return build_model(make_card(latent={"shape": [1]})).eval()


def linear_gaussian(n: int, a: float, s: float, seed: int = 0) -> DiagGaussian:
    """q(z|x_n) = N(a x_n, s^2), x_n ~ N(0, 1): I(x; z) = 1/2 log(1 + a^2 / s^2) in closed form."""
    x = torch.randn(n, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return DiagGaussian(a * x, torch.full_like(x, math.log(s)))


def rate_of(q: DiagGaussian) -> float:
    from zoo.distributions import gaussian_kl_standard_normal

    return float(gaussian_kl_standard_normal(q.mean, q.log_scale).sum(1).mean())


def test_the_bracket_contains_the_true_mutual_information(gaussian_model):
    q = linear_gaussian(2000, a=1.0, s=0.5)
    truth = 0.5 * math.log(1 + 1 / 0.25)                      # 0.805 nats, well below log 2000 = 7.6
    torch.manual_seed(0)
    r = aggregate_posterior_split(gaussian_model, q, samples=10, rate=rate_of(q))
    lo, hi = r["mutual_information"], r["mutual_information_upper"]
    assert lo <= hi
    assert lo - 3 * r["mutual_information_se"] <= truth <= hi + 3 * r["mutual_information_upper_se"], (lo, truth, hi)
    assert not r["mi_saturated"]
    assert r["marginal_kl"] == pytest.approx(rate_of(q) - lo) and r["marginal_kl"] >= 0


def test_the_lower_bound_saturates_at_log_n_and_says_so(gaussian_model):
    q = linear_gaussian(200, a=10.0, s=0.01)                  # I = 6.9 nats > log 200 = 5.3
    torch.manual_seed(0)
    r = aggregate_posterior_split(gaussian_model, q, samples=4, rate=rate_of(q))
    assert r["mutual_information"] <= math.log(200) + 1e-9 and r["mi_saturated"]
    assert "SATURATED" in r["mi_estimator"] and r["mutual_information_upper"] > math.log(200)


@pytest.mark.parametrize("seed", range(5))
def test_never_negative_and_zero_on_a_collapsed_posterior(gaussian_model, seed):
    collapsed = DiagGaussian(torch.zeros(300, 1, dtype=torch.float64), torch.zeros(300, 1, dtype=torch.float64))
    torch.manual_seed(seed)
    r = aggregate_posterior_split(gaussian_model, collapsed, rate=0.0)
    assert r["mutual_information"] == 0.0 and r["marginal_kl"] == 0.0
    nearly = linear_gaussian(300, a=1e-3, s=1.0, seed=seed)   # almost collapsed: MC noise around 0
    r = aggregate_posterior_split(gaussian_model, nearly, rate=rate_of(nearly))
    assert 0.0 <= r["mutual_information"] <= rate_of(nearly) and r["marginal_kl"] >= 0.0


def test_every_monte_carlo_number_has_a_standard_error_and_the_seed_is_the_models(gaussian_model):
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    r = diagnose(gaussian_model, x, iwae_k=5)
    for key in ("elbo", "distortion", "rate", "mutual_information", "nll"):
        se = r[f"{key}_se"]
        assert math.isfinite(se) and se > 0, key
    assert r["seed"] == diagnose(gaussian_model, x, iwae_k=5)["seed"]        # the model's own default
    other = build_model(make_card("another-model", latent={"shape": [1]})).eval()
    assert diagnose(other, x, iwae_k=5)["seed"] != r["seed"]                 # independent errors across models
    assert diagnose(gaussian_model, x, iwae_k=5, seed=3)["seed"] == 3
    assert "+- " in format_report(r)


def test_the_gmm_elbo_is_log_p_x_and_its_split_is_exact():
    from zoo.data import load_tensors
    from zoo_plugins.mixtures.gmm import fit_em_from_data

    model = build_model(make_card("gmm5", latent={"shape": [5]}, encoder={"name": "gmm-posterior"},
                                  decoder={"name": "gmm"}, prior={"name": "categorical"})).eval()
    fit_em_from_data(model, load_tensors("zoo:digits", "train"), iters=10)
    x = load_tensors("zoo:digits", "test")
    with torch.no_grad():
        assert (model.elbo(x).elbo.double() - model.log_likelihood(x)).abs().max() < 1e-4
    r = diagnose(model, x)
    assert r["nll"] == pytest.approx(-r["elbo"], abs=1e-9) and r["nll_kind"] == "exact"
    assert r["rate"] == pytest.approx(r["mutual_information"] + r["marginal_kl"], abs=1e-6)
    assert r["mi_estimator"].startswith("exact")
    assert "NLL (exact)" in format_report(r)


def test_the_latent_diffusion_bound_has_an_honest_standard_error():
    """ldm-mnist: L_0 evaluated exactly, one stratified draw per image: the SE over the images is finite
    and repeated evaluations (other timestep draws) stay within a few SE of each other."""
    from zoo.data import load_tensors

    model = zoo.load("ldm-mnist", pretrained=False).eval()
    x = load_tensors("zoo:mnist-5k", "test")[:48]
    reports = [diagnose(model, x, iwae_k=0, mi_samples=2, seed=s) for s in range(4)]
    elbos = [r["elbo"] for r in reports]
    se = max(r["elbo_se"] for r in reports)
    assert math.isfinite(se) and se > 0
    assert max(elbos) - min(elbos) < 6 * se, (elbos, se)
    r = reports[0]
    assert r["rate_kind"] == "upper bound" and "upper bound" in format_report(r)
    assert "latent diffusion" in r["rate_estimator"] and "exactly" in r["rate_estimator"]
    assert r["nll_kind"] == "negative ELBO" and "NLL <= -ELBO" in format_report(r)
    assert r["L_t"][0] is not None                                    # the t = 0 term for every image

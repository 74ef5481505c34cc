"""The Gaussian mixture model: exact posterior, EM, gradient ELBO, scikit-learn agreement, diagnostics."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import zoo
from zoo.assemble import build_model
from zoo.data import load_tensors
from zoo.diagnostics import diagnose
from zoo_plugins.mixtures.gmm import OneHotCategorical, fit_em, init_from_data, to_sklearn

from make_cards import make_card

def gmm(k: int = 5, dtype=torch.float64):
    card = make_card(f"gmm{k}", latent={"shape": [k]}, encoder={"name": "gmm-posterior"}, decoder={"name": "gmm"},
                     prior={"name": "categorical"})
    return build_model(card).to(dtype)


@pytest.fixture(scope="module")
def digits():
    """Digits in [0, 1], dequantised with uniform noise of one grey level so no pixel has zero variance
    (the diagonal-Gaussian MLE is then finite and EM's fixed point is a stationary point)."""
    x = load_tensors("zoo:digits", "train").double() / 255
    g = torch.Generator().manual_seed(0)
    return (x + (torch.rand(x.shape, generator=g, dtype=torch.float64) - 0.5) / 16).clamp(0, 1)


def initial_params(model):
    return (model.prior.log_weights.exp().detach().numpy().copy(),
            model.decoder.means.flatten(1).detach().numpy().copy(),
            (2 * model.decoder.log_scales.flatten(1)).exp().detach().numpy().copy())


def test_exact_posterior_elbo_equals_log_likelihood(digits):
    model = gmm()
    init_from_data(model, digits)
    x = digits[:64]
    terms = model.elbo(x)
    log_px = model.log_likelihood(x)
    # q = p(z|x): KL(q || p(z|x)) = 0, so the (enumerated, exact) ELBO is log p(x)
    assert torch.allclose(terms.elbo, log_px, atol=1e-9)
    q = model.encode(x)
    assert isinstance(q, OneHotCategorical)
    assert torch.allclose(q.probs.sum(1), torch.ones(64, dtype=torch.float64))
    # and log p(x) = logsumexp_k log pi_k + log N(x; mu_k, sigma_k^2), computed independently
    mu, ls = model.decoder.means.flatten(1), model.decoder.log_scales.flatten(1)
    comp = torch.distributions.Normal(mu, ls.exp()).log_prob(x.flatten(1)[:, None]).sum(-1)
    ref = torch.logsumexp(comp + model.prior.log_weights, 1)
    assert torch.allclose(log_px, ref, atol=1e-9)


def test_em_log_likelihood_never_decreases(digits):
    model = gmm(8)
    init_from_data(model, digits, seed=3)
    history = fit_em(model, digits, iters=60)
    steps = np.diff(history)
    assert len(history) == 61 and steps.min() >= -1e-9, f"EM decreased the log-likelihood: {steps.min()}"
    assert history[-1] > history[0] + 20


def test_em_matches_scikit_learn_gaussian_mixture(digits):
    """Same start, same number of EM iterations: scikit-learn's GaussianMixture(diag) reaches the same
    parameters and log-likelihood, and scores data exactly as our model does."""
    from sklearn.mixture import GaussianMixture

    model = gmm(5)
    init_from_data(model, digits)
    w0, mu0, var0 = initial_params(model)
    history = fit_em(model, digits, iters=30, reg_covar=1e-6)
    X = digits.flatten(1).numpy()
    sk = GaussianMixture(5, covariance_type="diag", weights_init=w0, means_init=mu0, precisions_init=1 / var0,
                         max_iter=30, tol=0.0, reg_covar=1e-6)
    with pytest.warns(Warning):  # ConvergenceWarning: max_iter reached with tol=0, as intended
        sk.fit(X)
    assert history[-1] == pytest.approx(sk.score(X), abs=1e-8)
    np.testing.assert_allclose(model.decoder.means.flatten(1).detach().numpy(), sk.means_, atol=1e-9)
    np.testing.assert_allclose(model.prior.log_weights.exp().detach().numpy(), sk.weights_, atol=1e-9)
    # our exact log p(x) equals scikit-learn's score_samples for any parameters
    ours = model.log_likelihood(digits).detach().numpy()
    np.testing.assert_allclose(ours, to_sklearn(model).score_samples(X), atol=1e-8)


def test_em_fixed_point_is_the_exact_posterior_elbo_optimum(digits):
    """At EM's fixed point the ELBO (with the exact posterior) equals log p(x) and its gradient in
    every parameter vanishes: EM and gradient ascent on this ELBO share their optima."""
    model = gmm(5)
    init_from_data(model, digits)
    model.zero_grad()
    (-model.elbo(digits).elbo.mean()).backward()
    start = max(p.grad.abs().max().item() for p in model.parameters())
    history = fit_em(model, digits, iters=1000, tol=1e-11, reg_covar=1e-9)
    assert history[-1] - history[-2] < 1e-9
    model.zero_grad()
    elbo = model.elbo(digits).elbo.mean()
    (-elbo).backward()
    grad = max(p.grad.abs().max().item() for p in model.parameters())
    assert elbo.item() == pytest.approx(history[-1], abs=1e-8)
    assert grad < 1e-4 * start, f"ELBO gradient at EM's fixed point {grad:.2e} (at the start {start:.2e})"


def test_gradient_elbo_training_reaches_the_em_optimum(digits):
    """Adam on the exact-posterior ELBO from the same start climbs to EM's log-likelihood."""
    em = gmm(5)
    init_from_data(em, digits)
    em_ll = fit_em(em, digits, iters=300, tol=1e-10)[-1]
    model = gmm(5, torch.float32)
    init_from_data(model, digits)
    x = digits.float()
    start = model.elbo(x).elbo.mean().item()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(400):
        loss, terms = model.objective(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = model.log_likelihood(x).mean().item()
    assert final > start + 20
    assert final == pytest.approx(em_ll, abs=0.5), (final, em_ll)


def test_gmm_card_trains_with_the_trainer_and_diagnoses_a_discrete_latent(tmp_path):
    card = zoo.get_card("gmm-digits")
    card.zoo["train"] = {"steps": 60, "batch_size": 256, "lr": 0.02, "seed": 0, "eval_iwae_k": 2}
    result = zoo.train(card, out=tmp_path / "gmm", progress=False)
    r = result.report
    assert math.isfinite(r["elbo"])
    # discrete z: rate = I_q(x;z) + KL(q(z)||p(z)) with the exact aggregate posterior, I <= H[z] <= log K
    assert r["mutual_information"] is not None
    assert abs(r["rate"] - (r["mutual_information"] + r["marginal_kl"])) < 0.05
    assert -1e-6 <= r["mutual_information"] <= math.log(10) + 1e-6
    assert sum(r["kl_per_dim"]) == pytest.approx(r["rate"], abs=1e-4)
    # the exact posterior makes the NLL exact (no importance-sampling gap): it is minus the enumerated ELBO
    test_x = load_tensors("zoo:digits", "test")
    with torch.no_grad():
        exact_elbo = result.model.elbo(test_x).elbo.mean().item()
    assert r["nll"] == pytest.approx(-exact_elbo, abs=1e-3)
    assert r["elbo"] == pytest.approx(exact_elbo, abs=3.0)  # diagnose's one-sample distortion: unbiased, noisy


def test_gmm_diagnostics_on_em_fit(digits):
    model = gmm(6, torch.float32)
    init_from_data(model, digits)
    fit_em(model, digits.float(), iters=30)
    r = diagnose(model, digits.float()[:400], iwae_k=1)
    assert abs(r["rate"] - (r["mutual_information"] + r["marginal_kl"])) < 0.05
    assert 0.5 < r["mutual_information"] <= math.log(6)
    assert r["nll"] == pytest.approx(-r["elbo"], abs=1.0)  # one-sample distortion in diagnose: close, not equal

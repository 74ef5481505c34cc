"""Gumbel-softmax VAE: relaxed samples for the decoder in training, the exact categorical KL as the rate."""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, kl_divergence

import zoo
from tiny_runs import card_text, train_and_reload
from zoo.assemble import build_model
from zoo.cards import parse_card
from zoo.errors import CardError
from zoo.testing import check_prior
from zoo_plugins.discrete.gumbel import GumbelPosterior

K, N = 4, 3
ENC = "{name: gumbel, hidden: [64], temperature: 1.0, min_temperature: 0.5, anneal_rate: 0.01}"
DEC = "{name: mlp, hidden: [64], likelihood: bernoulli}"


UNIFORM = "{name: categorical-codes, learn_weights: false}"


def gumbel_card(prior=UNIFORM, encoder=ENC, steps=60, objective="{beta: 1.0}"):
    return card_text(latent=f"[{K}, {N}]", encoder=encoder, decoder=DEC, prior=prior, steps=steps,
                     objective=objective)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("gumbel")
    return {"uniform": train_and_reload(gumbel_card(steps=150), out / "uniform", "tiny-gumbel"),
            "learned": train_and_reload(gumbel_card("{name: categorical-codes}"), out / "learned",
                                        "tiny-gumbel-learned")}


@pytest.mark.parametrize("which", ["uniform", "learned"])
def test_rate_is_the_exact_categorical_kl(runs, which):
    _, model = runs[which]
    x = torch.rand(7, 1, 8, 8)
    with torch.no_grad():
        q = model.encode(x)
        rate = model.elbo(x).rate
        p_logits = model.prior.log_weights(q.probs)                          # [K, N]
        ref = sum(kl_divergence(Categorical(logits=q.logits[:, :, l]), Categorical(logits=p_logits[:, l]))
                  for l in range(N))
    assert torch.allclose(rate, ref, atol=1e-5)
    assert (rate > 0).all()
    if which == "uniform":  # KL to the uniform prior = L log K - H[q]
        assert torch.allclose(rate, N * math.log(K) - q.entropy(), atol=1e-5)


def test_relaxed_samples_in_training_exact_one_hot_samples_in_eval(runs):
    _, model = runs["uniform"]
    x = torch.rand(5, 1, 8, 8)
    model.train()
    try:
        q = model.encode(x)
        y = q.rsample()
        assert q.relaxed and y.requires_grad and torch.allclose(y.sum(1), torch.ones(5, N), atol=1e-5)
        assert ((y > 0) & (y < 1)).all()                                     # the simplex interior
        with pytest.raises(ValueError, match="relaxed"):
            q.log_prob(y)
    finally:
        model.eval()
    with torch.no_grad():
        q = model.encode(x)
        z = q.rsample(20000, generator=torch.Generator().manual_seed(0))
        assert ((z == 0) | (z == 1)).all() and torch.equal(z.sum(2), torch.ones(20000, 5, N))
        assert (z.mean(0) - q.probs).abs().max() < 0.02                    # Gumbel-max: exact categorical draws
        assert torch.allclose(q.log_prob(z[:3]), (z[:3] * q.logits).sum((-1, -2)))


def test_temperature_anneals_and_resumes_with_the_weights(runs):
    result, _ = runs["uniform"]
    encoder = zoo.load(result.folder).encoder                               # the saved step counter
    assert int(encoder.step) == 150                                          # one per training step
    assert encoder.temperature == pytest.approx(max(0.5, math.exp(-0.01 * 150)))
    assert encoder.temperature < 1.0


def test_diagnose_numbers_are_consistent(runs):
    result, _ = runs["uniform"]
    r = result.report
    # entropy and cross-entropy are closed form: the split is exact, only H[q(z)] is Monte Carlo
    assert r["mutual_information"] + r["marginal_kl"] == pytest.approx(r["rate"], abs=1e-4)
    assert 0 < r["mutual_information"] <= min(math.log(r["n"]), N * math.log(K)) + 1e-6
    assert r["nll"] <= -r["elbo"] + 0.5
    assert len(r["kl_per_dim"]) == K * N and sum(r["kl_per_dim"]) == pytest.approx(r["rate"], abs=1e-3)


def test_straight_through_variant_allows_the_iwae_objective(tmp_path):
    with pytest.raises(CardError, match="hard: true"):
        build_model(parse_card(gumbel_card(objective="{iwae_k: 4}"), name="soft-iwae"))
    model = build_model(parse_card(gumbel_card(encoder="{name: gumbel, hidden: [16], hard: true}",
                                               objective="{iwae_k: 4}"), name="hard-iwae"))
    loss, terms = model.objective(torch.rand(3, 1, 8, 8))
    loss.backward()
    assert torch.isfinite(loss) and model.encoder.body[1][0].weight.grad.abs().sum() > 0


def test_gumbel_encoder_refuses_a_continuous_or_autoregressive_prior():
    with pytest.raises(CardError, match="exact categorical KL"):
        build_model(parse_card(gumbel_card(prior="{name: standard-normal}"), name="a"))
    with pytest.raises(CardError, match="exact categorical KL.*not AutoregressiveCodes"):
        build_model(parse_card(gumbel_card(prior="{name: autoregressive-codes}"), name="b"))


def test_cross_log_prob_is_pairwise_log_prob():
    q = GumbelPosterior(torch.randn(4, K, N))
    z = q.rsample(3).reshape(12, K, N)
    pairwise = torch.stack([q.log_prob(z[m].expand(4, K, N)) for m in range(12)])
    assert torch.allclose(q.cross_log_prob(z, chunk=5), pairwise, atol=1e-6)


def test_categorical_codes_prior_conforms():
    report = check_prior("categorical-codes", latent_shape=(4,), mc_samples=1000)
    assert {"normalised", "gradients", "safetensors", "in a VAE"} <= set(report["passed"])

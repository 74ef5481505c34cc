"""VQ-VAE: a deterministic one-hot posterior, the VQ-VAE loss as a surrogate, EMA codebook, code priors."""
from __future__ import annotations

import math

import pytest
import torch

import zoo
from tiny_runs import card_text, train_and_reload
from zoo.assemble import build_model
from zoo.cards import parse_card
from zoo.diagnostics import diagnose, format_report
from zoo.data import load_tensors
from zoo.errors import CardError
from zoo.testing import check_prior
from zoo_plugins.discrete.vq import VQPosterior, ema_codebook, lookup, nearest_codes, vqvae_loss

K, GRID = 8, (2, 2)
ENC = "{name: vq, channels: [16, 32], dim: 4, commitment: 0.25}"
DEC = "{name: vq, channels: [32, 16], dim: 4}"


UNIFORM = "{name: categorical-codes, learn_weights: false}"


def vq_card(prior=UNIFORM, encoder=ENC, decoder=DEC, steps=60, objective="{loss: vqvae}"):
    return card_text(latent=f"[{K}, 2, 2]", encoder=encoder, decoder=decoder, prior=prior, objective=objective,
                     steps=steps)


@pytest.fixture(scope="module")
def digits():
    return load_tensors("zoo:digits", "train")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("vq")
    return {"uniform": train_and_reload(vq_card(steps=150), out / "uniform", "tiny-vq"),
            "autoregressive": train_and_reload(vq_card("{name: autoregressive-codes, hidden: [64]}", steps=150),
                                               out / "ar", "tiny-vq-ar")}


def test_rate_is_L_log_K_under_the_uniform_prior_and_the_elbo_is_log_p_x_and_codes(runs, digits):
    _, model = runs["uniform"]
    x = digits[:50]
    with torch.no_grad():
        terms = model.elbo(x)
        q = model.encode(x)
        z = q.rsample()
        assert isinstance(q, VQPosterior) and torch.equal(z, q.rsample())      # deterministic
        log_lik = model.decoder(z).log_prob(model.prepare(x))
        length = math.prod(GRID)
        assert torch.allclose(terms.rate, torch.full((50,), length * math.log(K)), atol=1e-5)
        assert torch.allclose(terms.elbo, log_lik + model.prior.log_prob(z), atol=1e-4)   # log p(x, k(x))
        # every importance sample is the same grid: the k-sample bound is the ELBO
        assert torch.allclose(model.log_likelihood(x, k=5), terms.elbo, atol=1e-4)
        assert (q.log_prob(z) == 0).all() and torch.isinf(q.log_prob(model.prior.sample(50))).sum() > 0


def test_diagnose_reports_codebook_usage_and_an_exact_rate_split(runs):
    result, _ = runs["uniform"]
    r = result.report
    assert 1 <= r["codebook_perplexity"] <= r["codebook_usage"] <= r["codebook_size"] == K
    assert r["codebook_usage"] >= 4                                              # the data init keeps codes alive
    assert r["rate"] == pytest.approx(math.prod(GRID) * math.log(K), abs=1e-4)
    assert 0 < r["mutual_information"] <= math.log(r["n"]) + 1e-6
    assert r["mutual_information"] + r["marginal_kl"] == pytest.approx(r["rate"], abs=1e-3)
    assert r["nll"] == pytest.approx(-r["elbo"], abs=1e-3)
    assert "point mass" in r["mi_estimator"] and "equals the ELBO" in r["nll_estimator"]
    assert r["nll_kind"] == "negative ELBO" and r["rate_kind"] == "exact KL"     # labelled by what was computed
    text = format_report(r)
    assert f"/ {K} codes used, perplexity" in text


def test_ema_update_moves_used_codes_toward_their_assigned_encodings(runs, digits):
    model = zoo.load(runs["uniform"][0].folder)                      # a fresh copy: this test updates it
    dec = model.decoder
    model.train()
    try:
        with torch.no_grad():
            q = model.encode(digits[:64])
        before = dec.codebook.clone()
        n_old, m_old = dec.cluster_size.clone(), dec.embed_sum.clone()
        loss, terms = vqvae_loss(model.prior, q, "vqvae")
    finally:
        model.eval()
    flat = q.z_e.detach().movedim(1, -1).reshape(-1, 4)
    idx = q.index.reshape(-1)
    for i in range(K):
        chosen = flat[idx == i]
        if len(chosen) == 0:  # unused in this batch: the EMA mean m/N is unchanged
            assert torch.allclose(dec.codebook[i], before[i], atol=1e-5)
            continue
        target = chosen.mean(0)
        assert (dec.codebook[i] - target).norm() < (before[i] - target).norm()
        # eq. 6-8: e_i = (g m_i + (1 - g) sum z) / (g N_i + (1 - g) n_i)
        g = dec.ema
        expected = (g * m_old[i] + (1 - g) * chosen.sum(0)) / (g * n_old[i] + (1 - g) * len(chosen))
        assert torch.allclose(dec.codebook[i], expected, atol=1e-5)
    assert torch.isfinite(loss)
    assert set(terms.extras) == {"commitment"}


def test_straight_through_gradient_and_commitment(runs, digits):
    model = zoo.load(runs["uniform"][0].folder)
    x = model.prepare(digits[:16])
    q = model.encoder(x)
    q.z_e.retain_grad()
    dec = model.decoder
    e = lookup(dec.codebook, q.index)
    # the gradient the decoder gives its input at z_q = e ...
    z_q = e.clone().requires_grad_(True)
    (-dec.from_embedding(z_q).log_prob(x)).mean().backward()
    # ... is what reaches z_e through the straight-through estimator, plus the commitment term
    model.eval()                                                     # no EMA update in this check
    loss, _ = vqvae_loss(model.prior, q, "vqvae")
    loss.backward()
    commit_grad = 2 * 0.25 * (q.z_e - e).detach() / 16
    assert torch.allclose(q.z_e.grad, z_q.grad + commit_grad, atol=1e-5)
    assert model.encoder.net[0][0].weight.grad.abs().sum() > 0


def test_learned_autoregressive_prior_lowers_the_rate_below_L_log_K(runs):
    result, model = runs["autoregressive"]
    r = result.report
    assert r["rate"] < math.prod(GRID) * math.log(K) - 0.5
    assert r["kl_per_dim"] is None and "does not factorise over positions" in r["kl_per_dim_note"]
    assert r["mutual_information"] + r["marginal_kl"] == pytest.approx(r["rate"], abs=1e-3)
    with torch.no_grad():  # the rate is -log p(k(x)) of the autoregressive prior, exactly
        q = model.encode(torch.rand(5, 1, 8, 8))
        z = q.rsample()
        assert torch.allclose(model.rate(q)[1], -model.prior.log_prob(z))
    s = model.prior.sample(6, generator=torch.Generator().manual_seed(0))
    assert s.shape == (6, K, *GRID) and torch.equal(s.sum(1), torch.ones(6, *GRID))


def test_non_ema_codebook_is_trained_by_the_codebook_loss(tmp_path):
    result, model = train_and_reload(vq_card(decoder="{name: vq, channels: [32, 16], dim: 4, ema: null}", steps=30),
                                     tmp_path / "run", "tiny-vq-grad")
    book = model.decoder.codebook
    assert isinstance(book, torch.nn.Parameter) and "cluster_size" not in model.decoder.state_dict()
    x = model.prepare(torch.rand(8, 1, 8, 8))
    q = model.encoder(x)
    loss, terms = vqvae_loss(model.prior, q, "vqvae")
    assert "codebook_loss" in terms.extras
    model.zero_grad()
    from zoo_plugins.discrete.vq import codebook_loss

    codebook_loss(q.z_e, lookup(book, q.index)).mean().backward()
    before = book.detach().clone()
    with torch.no_grad():                       # one gradient step moves each selected code toward its encodings
        book -= 0.05 * book.grad
    flat, idx = q.z_e.detach().movedim(1, -1).reshape(-1, 4), q.index.reshape(-1)
    for i in idx.unique():
        target = flat[idx == i].mean(0)
        assert (book[i] - target).norm() < (before[i] - target).norm()
    assert result.report["codebook_usage"] >= 1


def test_vq_parts_refuse_what_does_not_fit():
    with pytest.raises(CardError, match="vq decoder's codebook"):
        build_model(parse_card(vq_card(decoder="{name: conv, channels: [8, 8], likelihood: bernoulli}"), name="a"))
    with pytest.raises(CardError, match="prior over codes"):
        build_model(parse_card(vq_card(prior="{name: standard-normal}", objective="{beta: 1.0}"), name="b"))
    with pytest.raises(CardError, match=r"set latent.shape to \[8, 2, 2\]"):
        build_model(parse_card(vq_card().replace("[8, 2, 2]", "[8, 4, 4]"), name="c"))
    with pytest.raises(CardError, match="same dim"):
        build_model(parse_card(vq_card(decoder="{name: vq, channels: [32, 16], dim: 5}"), name="d"))
    gumbel = build_model(parse_card(card_text(latent="[4, 3]", encoder="{name: gumbel, hidden: [16]}",
                                              decoder="{name: mlp, hidden: [16]}", prior=UNIFORM,
                                              objective="{loss: vqvae}"), name="e"))
    with pytest.raises(ValueError, match="needs the vq encoder"):
        gumbel.objective(torch.rand(2, 1, 8, 8))


def test_nearest_codes_is_the_argmin_distance():
    z_e = torch.randn(3, 4, 2, 2)
    book = torch.randn(6, 4)
    idx = nearest_codes(z_e, book)
    brute = ((z_e.movedim(1, -1)[..., None, :] - book) ** 2).sum(-1).argmin(-1)
    assert torch.equal(idx, brute)
    n, m, e = ema_codebook(torch.zeros(6), torch.zeros(6, 4), book, z_e, idx, 0.9)
    used = torch.bincount(idx.flatten(), minlength=6) > 0
    assert torch.allclose(e[~used], book[~used])      # never-assigned codes keep their value


# -- the code priors through the conformance kit ----------------------------------------------------
@pytest.mark.parametrize("args", [{"learn_weights": False}, {}])
def test_categorical_codes_prior_conforms_on_a_grid(args):
    report = check_prior("categorical-codes", latent_shape=(3, 2), prior_args=args,
                         encoder={"name": "gumbel", "hidden": [8]})
    assert {"shapes", "normalised", "dtype", "safetensors", "in a VAE"} <= set(report["passed"])


def test_autoregressive_codes_prior_conforms_on_a_code_grid():
    report = check_prior("autoregressive-codes", latent_shape=(3, 2, 2), prior_args={"hidden": [32]},
                         encoder={"name": "vq", "channels": [8, 8], "dim": 3},
                         decoder={"name": "vq", "channels": [8, 8], "dim": 3})
    assert {"shapes", "generator", "normalised", "gradients", "dtype", "safetensors", "in a VAE"} <= set(report["passed"])


def test_autoregressive_codes_prior_is_autoregressive():
    from zoo_plugins.discrete.codes_prior import AutoregressiveCodes

    prior = AutoregressiveCodes(latent_shape=(3, 4), hidden=[32])
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(torch.randn_like(p))
    z = prior.sample(2)
    changed = z.clone()
    changed[:, :, 2] = torch.roll(changed[:, :, 2], 1, dims=1)           # change position 2's code
    a, b = prior.conditionals(z), prior.conditionals(changed)
    assert torch.allclose(a[:, :3], b[:, :3])                            # positions 0..2 do not see it
    assert not torch.allclose(a[:, 3], b[:, 3])


def test_zoo_diagnose_command_on_a_vq_run(runs, capsys):
    from zoo.cli import main

    result, _ = runs["uniform"]
    assert main(["diagnose", str(result.folder), "--k", "2", "--max-points", "100"]) == 0
    out = capsys.readouterr().out
    assert f"/ {K} codes used, perplexity" in out and "equals the ELBO" in out
    assert main(["diagnose", str(result.folder), "--k", "2", "--max-points", "100", "--json"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["rate"] == pytest.approx(math.prod(GRID) * math.log(K), abs=1e-4)
    assert report["mutual_information"] + report["marginal_kl"] == pytest.approx(report["rate"], abs=1e-3)

"""Each objective family trains a few dozen steps at tiny size, saves, reloads, and shows a property of its own."""
from __future__ import annotations

import math

import pytest
import torch

import zoo
from tiny_runs import card_text, train_and_reload
from zoo.data import load_tensors
from zoo.diagnostics import diagnose

ENC = "{name: mlp, hidden: [32]}"
DEC = "{name: mlp, hidden: [32], likelihood: bernoulli}"
PRIOR = "{name: standard-normal}"

CARDS = ["btcvae-digits", "factorvae-digits", "dipvae1-digits", "dipvae2-digits", "miwae-digits", "ciwae-digits",
         "piwae-digits", "iwae-dreg-digits"]


def _tiny(objective: str, latent: str = "[4]", steps: int = 30) -> str:
    return card_text(latent=latent, encoder=ENC, decoder=DEC, prior=PRIOR, objective=objective, steps=steps)


@pytest.mark.parametrize("name", CARDS)
def test_objective_cards_assemble_their_objective(name):
    model = zoo.load(name, pretrained=False)
    objective = zoo.get_card(name).zoo["objective"]
    if "name" in objective:
        assert model.plugins["objective"]["name"] == objective["name"]
    else:
        assert model.training_objective is None and objective["gradient"] == "dreg"
    assert sum(p.numel() * p.element_size() for p in model.state_dict().values()) <= 512 * 1024


def test_btcvae_three_terms_sum_to_the_rate(tmp_path):
    result, loaded = train_and_reload(_tiny("{name: beta-tcvae, beta: 4.0, dataset_size: 1497}"), tmp_path / "run")
    x = load_tensors("zoo:digits", "test")[:200]
    report = diagnose(loaded, x, iwae_k=0, mi_samples=4)
    assert report["rate_split_sum"] == pytest.approx(report["rate"], abs=1e-5)     # the identity, before clipping
    assert all(0 <= report[k] <= report["rate"] for k in ("index_code_mi", "total_correlation", "dimension_wise_kl"))
    assert report["dimension_wise_kl"] > 0   # (beta 4, 30 steps: I_q ~0.05 nats, so TC ~0 and may be clipped to it)
    # the training objective's minibatch split sums to its one-sample rate, sample by sample
    torch.manual_seed(0)
    _, terms = loaded.objective(x[:64])
    parts = terms["index_code_mi"] + terms["total_correlation"] + terms["dimension_wise_kl"]
    assert torch.allclose(parts, terms.rate, atol=1e-4)
    assert "total_correlation" in result.report


def test_factorvae_discriminator_learns_and_is_saved(tmp_path):
    from zoo_plugins.objectives.disentangle import FactorVAE

    from zoo.assemble import build_model
    from zoo.cards import parse_card

    card = _tiny("{name: factorvae, gamma: 5.0, hidden: [32], discriminator_lr: 0.003}", steps=40)
    torch.manual_seed(0)            # the trainer's initialisation (train seed 0)
    fresh = build_model(parse_card(card, name="tiny"))
    result, loaded = train_and_reload(card, tmp_path / "run")
    assert isinstance(loaded.training_objective, FactorVAE)
    trained = result.model.training_objective.state_dict()
    assert all(torch.equal(v, loaded.training_objective.state_dict()[k]) for k, v in trained.items())  # saved
    moved = [k for k, v in trained.items() if not torch.equal(v, fresh.training_objective.state_dict()[k])]
    assert len(moved) == len(trained)                  # every discriminator tensor was stepped by its optimiser
    logged = (tmp_path / "run" / "metrics.csv").read_text()
    assert "train/discriminator_loss" in logged


def test_factorvae_tc_estimate_matches_the_exact_tc_on_a_correlated_toy():
    """The discriminator alone, on z ~ N(0, [[1, 0.9], [0.9, 1]]): its mean logit approaches the exact
    TC -1/2 log(1 - 0.81) = 0.83 nats; on independent z it stays near 0."""
    from zoo.distributions import DiagGaussian
    from zoo_plugins.objectives.disentangle import FactorVAE

    class Toy:
        def __init__(self, rho):
            self.rho = rho

        def posterior(self, x):
            a = torch.randn(x.shape[0], 2)
            mean = torch.stack([a[:, 0], self.rho * a[:, 0] + math.sqrt(1 - self.rho ** 2) * a[:, 1]], 1)
            return DiagGaussian(mean, torch.full_like(mean, math.log(1e-3)))

    estimates = {}
    for rho in (0.0, 0.9):
        torch.manual_seed(0)
        objective = FactorVAE(data_shape=(1, 8, 8), latent_shape=(2,), hidden=(32, 32))
        toy = Toy(rho)
        opt = torch.optim.Adam(objective.discriminator.parameters(), lr=3e-3)
        for _ in range(300):
            opt.zero_grad()
            objective.coupled_loss("discriminator", toy, torch.zeros(256)).backward()
            opt.step()
        with torch.no_grad():
            estimates[rho] = float(objective.tc_logits(toy.posterior(torch.zeros(4000)).mean).mean())
    exact = -0.5 * math.log(1 - 0.81)
    assert abs(estimates[0.9] - exact) < 0.3, estimates
    assert abs(estimates[0.0]) < 0.15, estimates


@pytest.mark.parametrize("variant", ["i", "ii"])
def test_dipvae_covariance_penalty_decreases(tmp_path, variant):
    from zoo.assemble import build_model
    from zoo.cards import parse_card
    from zoo_plugins.objectives.disentangle import dip_penalty

    card = _tiny(f"{{name: dip-vae-{variant}, lambda_od: 5.0, lambda_d: 5.0}}", steps=40)
    torch.manual_seed(0)            # the trainer's initialisation (train seed 0)
    before = build_model(parse_card(card, name="tiny"))
    _, loaded = train_and_reload(card, tmp_path / "run")
    x = load_tensors("zoo:digits", "test")[:256]

    def penalty(model):
        objective = model.training_objective
        with torch.no_grad():
            q = model.encode(x)
            return float(dip_penalty(objective.penalised_covariance(q, q.rsample()), 5.0, 5.0))

    assert penalty(loaded) < 0.7 * penalty(before)


def test_miwae_trains_and_its_bound_sits_between_elbo_and_iwae(tmp_path):
    from zoo_plugins.objectives.iwae import iwae_bound, miwae_bound

    _, loaded = train_and_reload(_tiny("{name: miwae, M: 2, K: 3}"), tmp_path / "run")
    x = loaded.prepare(load_tensors("zoo:digits", "test")[:64])
    torch.manual_seed(0)
    with torch.no_grad():
        loss, terms = loaded.objective(x, prepared=True)
        log_lik, log_ratio = loaded.log_weights(x, 6)
    log_w = log_lik + log_ratio
    assert (log_w.mean(0) <= miwae_bound(log_w.reshape(2, 3, -1)) + 1e-5).all()
    assert (miwae_bound(log_w.reshape(2, 3, -1)) <= iwae_bound(log_w) + 1e-5).all()
    assert float(loss) == pytest.approx(-float(terms["miwae"].mean()), rel=1e-6)


def test_ciwae_interpolates_elbo_and_iwae(tmp_path):
    _, loaded = train_and_reload(_tiny("{name: ciwae, K: 4, beta: 0.25}"), tmp_path / "run")
    x = loaded.prepare(load_tensors("zoo:digits", "test")[:64])
    torch.manual_seed(0)
    with torch.no_grad():
        loss, terms = loaded.objective(x, prepared=True)
        torch.manual_seed(0)
        log_lik, log_ratio = loaded.log_weights(x, 4)
    log_w = log_lik + log_ratio
    expected = 0.25 * log_w.mean(0) + 0.75 * (torch.logsumexp(log_w, 0) - math.log(4))
    assert torch.allclose(terms["ciwae"], expected, atol=1e-5)


def test_piwae_encoder_is_trained_by_its_own_optimiser_on_miwae(tmp_path):
    from zoo_plugins.objectives.iwae import miwae_bound

    seen = {}

    def spy(event, loop, **info):
        if event == "start":
            main = {id(p) for g in loop.raw_optimizer.param_groups for p in g["params"]}
            inference = {id(p) for g in loop.coupled["inference"].param_groups for p in g["params"]}
            seen["encoder"] = {id(p) for p in loop.model.encoder.parameters()}
            seen["main"], seen["inference"] = main, inference
            seen["decoder_in_main"] = {id(p) for p in loop.model.decoder.parameters()} <= main

    from zoo.cards import parse_card
    from zoo.training.loop import train

    out = tmp_path / "run"
    train(parse_card(_tiny("{name: piwae, M: 2, K: 2}"), name="tiny"), out=out, progress=False, callbacks=[spy])
    assert seen["inference"] == seen["encoder"] and not (seen["main"] & seen["encoder"]) and seen["decoder_in_main"]
    loaded = zoo.load(out)
    x = loaded.prepare(load_tensors("zoo:digits", "test")[:32])
    # the encoder's loss is MIWAE(2, 2) of the same weights the main (IWAE_4) loss uses
    torch.manual_seed(0)
    enc_loss = loaded.training_objective.coupled_loss("inference", loaded, x)
    torch.manual_seed(0)
    log_lik, log_ratio = loaded.log_weights(x, 4)
    assert torch.allclose(enc_loss, -miwae_bound((log_lik + log_ratio).reshape(2, 2, -1)).mean(), atol=1e-5)


def test_iwae_dreg_trains_and_reloads(tmp_path):
    _, loaded = train_and_reload(_tiny("{iwae_k: 4, gradient: dreg}"), tmp_path / "run")
    x = loaded.prepare(load_tensors("zoo:digits", "test")[:32])
    torch.manual_seed(0)
    loss, terms = loaded.objective(x, prepared=True)
    assert loss.item() == pytest.approx(-terms["iwae"].mean().item(), rel=1e-6)
    loss.backward()                    # the DReG hook: the encoder still gets a finite, nonzero gradient
    grads = torch.cat([p.grad.flatten() for p in loaded.encoder.parameters()])
    assert torch.isfinite(grads).all() and grads.abs().sum() > 0

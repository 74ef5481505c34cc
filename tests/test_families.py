"""The seed's model families: beta-VAE / IWAE objective, VampPrior, flow prior, hierarchical VAE, timm encoders."""
from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo.assemble import build_model
from zoo.data import load_tensors
from zoo.diagnostics import diagnose, format_report

from make_cards import make_card

def tiny(encoder=None, decoder=None, prior=None, latent=4, objective=None, name="tiny"):
    """A small digits model: mlp encoder / mlp Bernoulli decoder / standard normal unless given."""
    return build_model(make_card(name, latent={"shape": [latent]},
                                 encoder=encoder or {"name": "mlp", "hidden": [64]},
                                 decoder=decoder or {"name": "mlp", "hidden": [64], "likelihood": "bernoulli"},
                                 prior=prior or {"name": "standard-normal"}, objective=objective or {"beta": 1.0}))


@pytest.fixture(scope="module")
def digits():
    return load_tensors("zoo:digits", "train")


def fit(model, x, steps=150, lr=3e-3, batch=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=g)
        loss, _ = model.objective(x[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


# -- beta-VAE and IWAE objectives ----------------------------------------------------------------
def test_objective_is_the_beta_elbo_by_default():
    model = tiny(objective={'beta': 3.0})
    x = torch.rand(8, 1, 8, 8)
    torch.manual_seed(0)
    loss, terms = model.objective(x)
    torch.manual_seed(0)
    ref = model.elbo(x)
    assert torch.allclose(loss, (ref.distortion + 3.0 * ref.rate).mean())
    torch.manual_seed(0)
    assert torch.allclose(model.objective(x, beta=1.0)[0], -ref.elbo.mean())


def test_iwae_objective_is_the_k_sample_bound():
    model = tiny(objective={'beta': 1.0, 'iwae_k': 8})
    x = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        torch.manual_seed(1)
        loss, terms = model.objective(x)
        # the same k draws give the IWAE bound (objective) and the average ELBO (terms)
        assert torch.allclose(loss, -terms["iwae"].mean())
        assert (terms["iwae"] >= terms.elbo - 1e-5).all()          # log-mean-exp >= mean of logs
        assert torch.allclose(terms.elbo, -(terms.distortion + terms.rate))
        torch.manual_seed(1)
        ref = model.log_likelihood(x, k=8)                         # LatentModel's IWAE estimator, same draws
        assert torch.allclose(terms["iwae"], ref, atol=1e-4)
        k1 = tiny(objective={'beta': 1.0, 'iwae_k': 1})
        k1.load_state_dict(model.state_dict())
        elbo = torch.stack([k1.objective(x)[0] for _ in range(200)]).mean()
        iwae = torch.stack([model.objective(x)[0] for _ in range(200)]).mean()
        assert iwae < elbo                                         # the k=8 bound is tighter (a lower loss)


def test_iwae_training_improves_the_bound(digits):
    model = tiny(objective={'beta': 1.0, 'iwae_k': 5})
    x = digits[:256]
    before = model.log_likelihood(x, k=20).mean().item()
    fit(model, digits, steps=150)
    after = model.log_likelihood(x, k=20).mean().item()
    assert after > before + 10


def test_beta_vae_card_trains_on_more_distortion_less_rate(digits):
    a = fit(tiny(objective={'beta': 0.5}), digits, steps=200)
    b = fit(tiny(objective={'beta': 8.0}), digits, steps=200)
    with torch.no_grad():
        ra, rb = a.elbo(digits[:300]), b.elbo(digits[:300])
    assert rb.rate.mean() < ra.rate.mean() and rb.distortion.mean() > ra.distortion.mean()


# -- VampPrior and flow prior: any encoder/decoder -----------------------------------------------
@pytest.mark.parametrize("prior", [{'name': 'vampprior', 'components': 10}, {'name': 'realnvp', 'layers': 4, 'hidden': 32}])
@pytest.mark.parametrize("parts", [
    ({'name': 'mlp', 'hidden': [64]}, {'name': 'mlp', 'hidden': [64], 'likelihood': 'bernoulli'}),
    ({'name': 'conv', 'channels': [8, 16]}, {'name': 'conv', 'channels': [16, 8], 'likelihood': 'discretized-logistic'}),
])
def test_expressive_priors_work_under_any_encoder_and_decoder(prior, parts, digits):
    model = tiny(encoder=parts[0], decoder=parts[1], prior=prior)
    x = digits[:200]
    before = model.elbo(x).elbo.mean().item()
    fit(model, digits, steps=40)
    r = diagnose(model, x, iwae_k=5)
    assert r["elbo"] > before
    assert abs(r["rate"] - (r["mutual_information"] + r["marginal_kl"])) < 0.3  # MC rate vs exact split: noisy
    assert r["nll"] <= -r["elbo"] + 1.0
    assert model.sample(3).shape == (3, 1, 8, 8)


def test_vampprior_is_the_encoders_mixture_at_the_pseudo_inputs():
    model = tiny(prior={'name': 'vampprior', 'components': 7}, latent=3)
    z = torch.randn(5, 3)
    q = model.encoder(model.prior.pseudo_inputs)
    ref = torch.logsumexp(torch.stack([q[k].log_prob(z) if False else
                                       torch.distributions.Normal(q.mean[k], q.stddev[k]).log_prob(z).sum(-1)
                                       for k in range(7)]), 0) - math.log(7)
    assert torch.allclose(model.prior.log_prob(z), ref, atol=1e-5)
    # gradients reach both the pseudo-inputs and the encoder through the prior
    model.prior.log_prob(z).sum().backward()
    assert model.prior.pseudo_inputs.grad.abs().sum() > 0
    assert model.encoder.head.linear.weight.grad.abs().sum() > 0


def test_flow_prior_starts_as_standard_normal_and_inverts():
    model = tiny(prior={'name': 'realnvp', 'layers': 6, 'hidden': 16}, latent=5)
    z = torch.randn(10, 5)
    std = -0.5 * (z ** 2 + math.log(2 * math.pi)).sum(-1)
    assert torch.allclose(model.prior.log_prob(z), std, atol=1e-5)
    with torch.no_grad():
        for p in model.prior.parameters():
            p.add_(0.3 * torch.randn_like(p))
    u, _ = model.prior.forward_flow(z)
    back = u
    for c in reversed(model.prior.couplings):
        back = c.inverse(back)
    assert torch.allclose(back, z, atol=1e-5)
    assert not torch.allclose(model.prior.log_prob(z), std, atol=1e-3)


# -- hierarchical VAE ---------------------------------------------------------------------------
HVAE = dict(encoder={'name': 'ladder', 'layers': [6, 3], 'hidden': [64, 32]}, prior={'name': 'ladder', 'layers': [6, 3], 'hidden': 32},
            latent=9)


@pytest.mark.parametrize("merge", ["residual", "precision"])
def test_hierarchical_rate_is_the_sum_of_layer_kls_and_matches_monte_carlo(merge):
    model = tiny(**{**HVAE, "encoder": {**HVAE["encoder"], "merge": merge}})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = model.prepare(torch.rand(4, 1, 8, 8))
    q = model.encoder(x)
    with torch.no_grad():
        torch.manual_seed(0)
        z, rate, extras = model.rate(q)
        kl = extras["kl_per_layer"]
        assert kl.shape == (4, 2) and torch.allclose(kl.sum(1), rate)
        assert (kl >= -1e-6).all()
        # E_q[KL_1 + KL_2] (closed form per layer given z_2) equals E_q[log q(z|x) - log p(z)]
        analytic = torch.stack([model.rate(q)[1] for _ in range(4000)]).mean(0)
        zs = q.rsample(20000)
        mc = (q.log_prob(zs) - model.prior.log_prob(zs)).mean(0)
        assert torch.allclose(analytic, mc, rtol=0.05, atol=0.05)


def test_hierarchical_vae_trains_and_diagnose_reports_kl_per_layer(digits):
    model = fit(tiny(**HVAE), digits, steps=300)
    r = diagnose(model, digits[:300], iwae_k=10)
    assert len(r["kl_per_layer"]) == 2 and sum(r["kl_per_layer"]) == pytest.approx(r["rate"], abs=1e-3)
    assert sum(r["kl_per_layer"]) > 0.5 and min(r["kl_per_layer"]) >= 0, r["kl_per_layer"]
    assert r["latent_dims"] == 9 and r["active_units"] >= 1
    assert r["nll"] <= -r["elbo"] + 0.5
    assert "kl_per_layer" in format_report(r)
    assert model.sample(4).shape == (4, 1, 8, 8)
    # the hierarchical posterior's exact aggregate: I_q + marginal KL = rate up to the MC noise of H[q(z|x)]
    assert 0 < r["mutual_information"] <= math.log(300) + 1e-3
    assert r["mutual_information"] + r["marginal_kl"] == pytest.approx(r["rate"], rel=0.1)
    assert "same samples" in r["mi_estimator"]


def test_ladder_posterior_cross_log_prob_matches_pairwise_log_prob(digits):
    model = tiny(**HVAE)
    with torch.no_grad():
        q = model.encode(digits[:5])
        z = q.rsample(3).reshape(15, -1)
        pairwise = torch.stack([q.log_prob(z[m].expand(5, -1)) for m in range(15)])
        assert torch.allclose(q.cross_log_prob(z, chunk=4), pairwise, atol=1e-4)


def test_ladder_prior_also_works_with_a_plain_gaussian_encoder():
    model = tiny(prior={'name': 'ladder', 'layers': [3, 2]}, latent=5)
    terms = model.elbo(torch.rand(3, 1, 8, 8))
    assert terms.extras["kl_per_layer"].shape == (3, 2)
    assert torch.allclose(terms.extras["kl_per_layer"].sum(1), terms.rate)


def test_ladder_encoder_refuses_a_mismatched_prior():
    with pytest.raises(ValueError, match="ladder prior"):
        tiny(encoder={'name': 'ladder', 'layers': [2, 2]}, latent=4)
    with pytest.raises(ValueError, match="differ"):
        tiny(encoder={'name': 'ladder', 'layers': [3, 1]}, prior={'name': 'ladder', 'layers': [2, 2]}, latent=4)


# -- timm backbones -------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [{'name': 'timm', 'model': 'test_resnet'},
                                  {'name': 'timm', 'model': 'test_resnet', 'features': 'features_only'},
                                  {'name': 'timm', 'model': 'test_resnet', 'features': 'features_only', 'out_index': 1, 'pool': 'flatten'},
                                  {'name': 'timm', 'model': 'test_efficientnet'}])
def test_timm_backbones_as_encoders(args, digits):
    model = tiny(encoder=args)
    loss, terms = model.objective(digits[:8])
    loss.backward()
    assert torch.isfinite(loss) and terms.elbo.shape == (8,)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.backbone.parameters())


def test_timm_pretrained_weights_load_through_timms_own_loader(tmp_path):
    """pretrained: true goes through timm.create_model(pretrained=True); a local file stands in for the Hub."""
    import timm
    from safetensors.torch import save_file

    src = timm.create_model("test_resnet", pretrained=False)
    with torch.no_grad():
        for p in src.parameters():
            p.normal_()
    path = tmp_path / "test_resnet.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))
    model = tiny(encoder={"name": "timm", "model": "test_resnet", "pretrained": True, "pretrained_file": str(path)})
    enc = model.encoder
    assert enc.normalize  # pretrained backbones see images normalised with their mean/std
    first = "conv1.0.weight"
    # grey-scale input: timm sums the pretrained RGB filters of the first convolution
    assert torch.allclose(enc.backbone.state_dict()[first][:, 0], src.state_dict()[first].sum(1))
    rest = [k for k in src.state_dict() if k != first and not k.startswith("fc.") and "num_batches" not in k]
    assert all(torch.equal(enc.backbone.state_dict()[k], src.state_dict()[k]) for k in rest)
    assert torch.isfinite(model.elbo(torch.rand(2, 1, 8, 8)).elbo).all()


def test_timm_unknown_model_is_a_card_error():
    from zoo.errors import CardError

    with pytest.raises(CardError, match="unknown timm model"):
        tiny(encoder={'name': 'timm', 'model': 'resnet_does_not_exist'})


def test_new_cards_are_listed():
    names = zoo.list_models()
    for name in ("gmm-digits", "iwae-mnist", "vae-vampprior-mnist", "vae-flow-mnist", "hvae-digits",
                 "vae-timm-cifar10", "vae-digits"):
        assert name in names

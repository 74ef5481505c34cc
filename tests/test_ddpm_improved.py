"""Improved-DDPM options of the ``ddpm`` prior (Nichol & Dhariwal 2021): learned variances, the hybrid
loss with its stop-gradient, importance-sampled L_vlb; the MLP noise network for vector latents; and
``train.init_from`` / ``train.freeze`` (a diffusion prior trained over a shipped VAE's frozen latent)."""
from __future__ import annotations

import math

import pytest
import torch

from make_cards import make_card
from zoo.errors import CardError

TINY_UNET = {"channels": 16, "channel_mult": [1, 1], "num_res_blocks": 1, "attention_resolutions": [4], "norm_groups": 8}
X8 = (torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(3)) * 255).to(torch.uint8)


def tiny(variance="learned", objective=None, T=20, K=None):
    return make_card("ddpm-improved-tiny", metadata={"license": "apache-2.0"}, latent={"shape": [1, 8, 8]},
                     encoder={"name": "ddpm-noising"}, decoder={"name": "ddpm-decoder"},
                     prior={"name": "ddpm", "unet": TINY_UNET, "timesteps": T, "variance": variance,
                            "eval_timesteps": K},
                     objective=objective or {"loss": "hybrid"},
                     train={"steps": 3, "batch_size": 32, "lr": 0.001, "eval_iwae_k": 1, "num_samples": 4,
                            "eval_every": 0, "sample_every": 0})


def build(card):
    from zoo.assemble import build_model

    return build_model(card)


# -- learned variances ---------------------------------------------------------------------------------------
def test_learned_variance_output_shape_and_interpolation():
    from zoo_plugins.diffusion.mlp import MLPDenoiser
    from zoo_plugins.diffusion.schedule import NoiseSchedule, p_mean_variance

    model = build(tiny())
    x = model.prepare(X8)
    t = torch.tensor([0, 1, 5, 10, 15, 19])
    assert model.prior.unet(x, t).shape == (6, 2, 8, 8)          # eps and v
    assert model.prior.eps(x, t).shape == (6, 1, 8, 8)           # the sampler's eps alone
    assert MLPDenoiser((16,), out_mult=2)(torch.randn(3, 16), torch.tensor([0, 4, 9])).shape == (3, 32)
    # log Sigma = v log beta_t + (1 - v) log beta~_t: v = 0 fixed-small, v = 1 fixed-large, v = 1/2 the log midpoint
    s = NoiseSchedule.linear(20)
    eps = torch.randn(6, 1, 8, 8)
    tk = torch.tensor([1, 2, 5, 10, 15, 19])  # t >= 2 in paper steps: beta~_t > 0 itself
    for v, expect in ((0.0, s.posterior_variance.log()), (1.0, s.betas.log()),
                      (0.5, 0.5 * (s.posterior_variance.log() + s.betas.log()))):
        out = torch.cat([eps, torch.full_like(eps, v)], 1)
        p = p_mean_variance(s, out, x, tk, "learned")
        assert torch.allclose(p.log_variance[:, 0, 0, 0], expect[tk].float(), atol=1e-5)
        small = p_mean_variance(s, eps, x, tk, "fixed_small")
        assert torch.allclose(p.mean, small.mean)                # v moves the variance only
    # at t = 1 (index 0, beta~_1 = 0) sigma^2 moves between beta~_2 and beta_1
    out = torch.cat([eps, torch.zeros_like(eps)], 1)
    assert torch.allclose(p_mean_variance(s, out, x, torch.zeros(6, dtype=torch.long), "learned").log_variance,
                          s.posterior_variance[1].log().float().expand(6, 1, 8, 8))
    with pytest.raises(ValueError, match="twice the channels of x_t"):
        p_mean_variance(s, eps, x, tk, "learned")


def test_reported_bound_is_the_true_one_under_learned_variances():
    """The ELBO of a learned-variance model is the same exact bound: with v = 0 it equals the fixed-small
    model's with the same eps network and noise; with v != 0 it moves."""
    fixed, learned = build(tiny("fixed-small", {"loss": "simple"}, T=12)), build(tiny(T=12))
    state = {k: v for k, v in fixed.state_dict().items() if not k.startswith("prior.unet.conv_out")}
    learned.load_state_dict(state, strict=False)
    out = learned.prior.unet.conv_out
    with torch.no_grad():
        out.weight.zero_(), out.bias.zero_()
        out.weight[:1] = fixed.prior.unet.conv_out.weight
        out.bias[:1] = fixed.prior.unet.conv_out.bias
    with torch.no_grad():
        torch.manual_seed(0)
        a = fixed.elbo(X8)
        torch.manual_seed(0)
        b = learned.elbo(X8)
        assert torch.allclose(a.elbo, b.elbo, rtol=1e-5) and torch.allclose(a.distortion, b.distortion, rtol=1e-5)
        out.bias[1:] = 0.5
        torch.manual_seed(0)
        c = learned.elbo(X8)
    assert not torch.allclose(a.rate, c.rate, rtol=1e-3) and not torch.allclose(a.distortion, c.distortion, rtol=1e-3)


# -- hybrid loss ---------------------------------------------------------------------------------------------
def test_hybrid_loss_stops_the_mean_gradient_of_its_vlb_term():
    """L_hybrid = L_simple + lambda L_vlb: the eps half of the output gets L_simple's gradient alone, the v
    half gets L_vlb's (and nothing else)."""
    grads = {}
    for weight in (0.0, 0.001, 1.0):
        torch.manual_seed(0)
        model = build(tiny(objective={"loss": "hybrid", "vlb_weight": weight}))
        captured = {}
        forward = model.prior.unet.forward

        def spy(x, t, forward=forward, captured=captured):
            out = forward(x, t)
            out.retain_grad()
            captured["out"] = out
            return out
        model.prior.unet.forward = spy
        torch.manual_seed(1)
        loss, terms = model.objective(X8)
        loss.backward()
        g = captured["out"].grad
        grads[weight] = (g[:, :1].clone(), g[:, 1:].clone())
        assert torch.isfinite(terms.elbo).all() and "L_simple" in terms.extras
    assert torch.allclose(grads[0.0][0], grads[1.0][0]) and torch.allclose(grads[0.0][0], grads[0.001][0])
    assert grads[0.0][0].abs().sum() > 0
    assert not grads[0.0][1].any() and grads[1.0][1].abs().sum() > 0
    assert torch.allclose(grads[1.0][1] * 0.001, grads[0.001][1], rtol=1e-4, atol=1e-12)


def test_surrogate_loss_options_and_refusals():
    with pytest.raises(ValueError, match="'simple' does not train learned variances"):
        build(tiny(objective={"loss": "simple"})).objective(X8)
    with pytest.raises(ValueError, match="timestep_sampling 'importance'.*goes with objective.loss 'vlb'"):
        build(tiny(objective={"loss": "hybrid", "timestep_sampling": "importance"})).objective(X8)
    with pytest.raises(ValueError, match="vlb_weight must be a number >= 0"):
        build(tiny(objective={"loss": "hybrid", "vlb_weight": -1})).objective(X8)
    with pytest.raises(TypeError, match="unexpected keyword argument 'vlb_wieght'"):
        build(tiny(objective={"loss": "hybrid", "vlb_wieght": 0.1})).objective(X8)
    with pytest.raises(CardError, match=r"zoo\.objective.*vlb_weight"):  # only a surrogate loss takes options
        build(make_card("x", metadata={"license": "apache-2.0"}, objective={"loss": "elbo", "vlb_weight": 0.1}))


# -- importance-sampled L_vlb --------------------------------------------------------------------------------
def test_importance_sampler_weights_are_unbiased():
    from zoo_plugins.diffusion.improved import ImportanceSampler, vlb_estimate

    T = 30
    L = torch.linspace(3.0, 0.01, T, dtype=torch.float64) ** 2 + torch.rand(T, dtype=torch.float64,
                                                                           generator=torch.Generator().manual_seed(0))
    s = ImportanceSampler(T, history=4)
    assert torch.allclose(s.probabilities(), torch.full((T,), 1 / T, dtype=torch.float64))  # uniform until warm
    for _ in range(4):
        s.update(torch.arange(T), L)
    assert s.warm
    p = s.probabilities()
    assert math.isclose(float(p.sum()), 1.0, rel_tol=1e-12) and (p > 0).all()
    assert p[0] > 10 * p[-1]                                       # big terms are drawn more often
    # exactly: E_{t ~ p}[L_t / p_t] = sum_t L_t
    assert math.isclose(float((p * (L / p)).sum()), float(L.sum()), rel_tol=1e-12)
    # and by sampling: the one-sample estimates average to the sum, with less variance than uniform draws
    t, pt = s.sample(40000, generator=torch.Generator().manual_seed(1))
    est = vlb_estimate(L[t], torch.zeros(()), pt)
    assert abs(float(est.mean()) - float(L.sum())) < 4 * float(est.std()) / math.sqrt(len(est))
    uniform = L[torch.randint(0, T, (40000,), generator=torch.Generator().manual_seed(2))] * T
    assert est.std() < uniform.std()


def test_vlb_loss_with_importance_sampling_trains():
    model = build(tiny(objective={"loss": "vlb", "timestep_sampling": "importance"}, T=10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(12):  # 72 draws over 10 steps: the history of some steps fills
        loss, terms = model.objective(X8)
        assert torch.isfinite(loss) and torch.isfinite(terms.elbo).all()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert int(model.prior.importance.counts.sum()) == 72


# -- a diffusion prior over a VAE's vector latent, initialised from a shipped VAE --------------------------------
def test_init_from_copies_the_named_tensors_and_refuses_a_misfit():
    """train.init_from: vae-mnist's encoder and decoder into ldm-mnist (its prior keeps its initialisation);
    a source whose tensors do not fit is refused naming them.  (train.freeze during a run: test_ddpm.py's
    test_latent_diffusion_mnist_builds_trains_and_diagnoses.)"""
    import zoo
    from zoo.assemble import build_model
    from zoo.training.loop import init_from

    torch.manual_seed(0)
    model = build_model(zoo.get_card("ldm-mnist"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    init_from(model, "vae-mnist")
    own = zoo.load("vae-mnist").state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, own[k] if k in own else before[k]), k
    assert any(k.startswith("prior.") for k in before) and not any(k.startswith("prior.") for k in own)
    assert model.prior.log_prob(torch.randn(5, 16)).shape == (5,)
    with pytest.raises(CardError, match=r"train.init_from 'ddpm-digits': its weights do not fit this model"):
        init_from(model, "ddpm-digits")

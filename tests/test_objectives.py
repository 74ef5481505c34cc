"""Registered objectives: the register_objectives hook, coupled optimisers, the TC split, DReG, the IWAE variants."""
from __future__ import annotations

import math
import types

import pytest
import torch
from torch import nn

from zoo import contracts as c
from zoo.assemble import build_model
from zoo.decomposition import mixture_log_density, mss_log_weights
from zoo.distributions import DiagGaussian
from zoo.errors import CardError
from zoo.hookspecs import hookimpl


def _plugin(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook, fn in hooks.items():
        setattr(module, hook, hookimpl(fn))
    return module


class PullToTarget(nn.Module):
    """A third-party objective: the ELBO scaled by ``scale``, plus a coupled scalar pulled to ``target``
    by an optimiser of its own (a second player that does not touch the model)."""

    def __init__(self, *, data_shape, latent_shape, scale=1.0, target=3.0):
        super().__init__()
        self.scale, self.target = scale, target
        self.offset = nn.Parameter(torch.zeros(()))

    def forward(self, model, x):
        terms = model.elbo(x, prepared=True)
        return self.scale * terms.loss(), terms

    def coupled_parameters(self, model):
        return {"offset": {"params": [self.offset], "lr": 0.1}}

    def coupled_loss(self, name, model, x):
        return (self.offset - self.target) ** 2


def test_register_objectives_hook_a_card_uses_a_third_party_objective(fresh_registry, make_card, tmp_path):
    import zoo
    from zoo.training.loop import train

    fresh_registry.add_plugin(_plugin("third", register_objectives=lambda register: register("pull", PullToTarget)))
    model = build_model(make_card(objective={"name": "pull", "scale": 2.0}))
    assert isinstance(model.training_objective, PullToTarget) and c.has(model.training_objective, c.CoupledObjective)
    assert model.plugins["objective"]["name"] == "pull"
    x = torch.rand(5, 1, 8, 8)
    torch.manual_seed(3)
    loss, _ = model.objective(x)
    torch.manual_seed(3)
    assert torch.allclose(loss, 2.0 * model.elbo(x).loss())

    seen = {}

    def spy(event, loop, **info):
        if event == "start":
            main = {id(p) for g in loop.raw_optimizer.param_groups for p in g["params"]}
            seen["offset_in_main"] = id(loop.model.training_objective.offset) in main
            seen["coupled"] = sorted(loop.coupled)

    card = make_card(objective={"name": "pull"}, train={"steps": 12, "batch_size": 32, "eval_every": 0,
                                                         "sample_every": 0, "eval_iwae_k": 2, "checkpoint_every": 6})
    result = train(card, out=tmp_path / "run", progress=False, callbacks=[spy])
    assert seen == {"offset_in_main": False, "coupled": ["offset"]}
    offset = result.model.training_objective.offset.item()
    assert 1.0 < offset < 1.25                                # Adam moves it about lr = 0.1 per step, 12 steps
    assert zoo.load(tmp_path / "run").training_objective.offset.item() == offset   # saved with the model
    # resuming (from the step-12 checkpoint) continues the coupled optimiser: two more steps towards 3
    again = train(card, out=tmp_path / "run", progress=False, resume=True, steps=14)
    assert 0.1 < again.model.training_objective.offset.item() - offset < 0.25


def test_objective_errors_name_the_field(fresh_registry, make_card):
    with pytest.raises(CardError, match="zoo.objective.name"):
        build_model(make_card(objective={"name": "no-such-objective"}))
    with pytest.raises(CardError, match="zoo.objective.*does not accept"):
        build_model(make_card(objective={"name": "miwae", "Q": 3}))
    with pytest.raises(CardError, match="zoo.objective.*M must be an integer"):
        build_model(make_card(objective={"name": "miwae", "M": 0}))
    with pytest.raises(CardError, match="zoo.objective.gradient"):
        build_model(make_card(objective={"iwae_k": 4, "gradient": "score"}))
    with pytest.raises(CardError, match="zoo.objective.gradient.*iwae_k > 1"):
        build_model(make_card(objective={"gradient": "dreg"}))
    with pytest.raises(CardError, match="zoo.objective.mystery"):   # the built-in elbo keeps its fields
        build_model(make_card(objective={"beta": 1.0, "mystery": 1}))


# -- the rate split (zoo.decomposition, diagnose) ------------------------------------------------------

def test_mss_weights_are_a_mixture_and_per_dim_cross_sums_to_the_joint():
    w = mss_log_weights(6, 50, dtype=torch.float64).exp()
    assert torch.allclose(w.sum(1), torch.ones(6, dtype=torch.float64))
    q = DiagGaussian(torch.randn(7, 3), 0.3 * torch.randn(7, 3))
    z = q.rsample()
    per_dim = q.cross_log_prob_per_dim(z)
    assert per_dim.shape == (7, 7, 3)
    assert torch.allclose(per_dim.sum(2), q.cross_log_prob(z), atol=1e-4)
    log_qz, _ = mixture_log_density(per_dim, torch.full((7,), -math.log(7)))
    assert torch.allclose(log_qz, torch.logsumexp(q.cross_log_prob(z), 1) - math.log(7), atol=1e-4)


@pytest.mark.parametrize("rho", [0.0, 0.9])
def test_full_set_total_correlation_of_a_correlated_aggregate(make_card, rho):
    """Posteriors N(m_n, 0.3^2 I) at means from a 2-d Gaussian with correlation rho: the aggregate is about
    a Gaussian with correlation r = rho / 1.09, so its TC is about -1/2 log(1 - r^2) (0.60 nats at rho = 0.9,
    0 at rho = 0), and the three terms sum to the rate."""
    from zoo.diagnostics import aggregate_posterior_split

    model = build_model(make_card(latent={"shape": [2]}))
    g = torch.Generator().manual_seed(0)
    a = torch.randn(1500, 2, generator=g)
    means = torch.stack([a[:, 0], rho * a[:, 0] + math.sqrt(1 - rho ** 2) * a[:, 1]], 1)
    q = DiagGaussian(means, torch.full_like(means, math.log(0.3)))
    rate = float((model.prior.cross_entropy(q) - q.entropy()).double().mean())
    out = aggregate_posterior_split(model, q, 2, rate=rate)
    expected = -0.5 * math.log(1 - (rho / 1.09) ** 2)
    assert abs(out["total_correlation"] - expected) < 0.1, (out["total_correlation"], expected)
    assert out["rate_split_sum"] == pytest.approx(rate, abs=1e-6)        # before the [0, rate] clipping rule
    assert all(0.0 <= out[k] <= rate for k in ("index_code_mi", "total_correlation", "dimension_wise_kl"))
    assert "full-set" in out["tc_estimator"]


# -- DReG -------------------------------------------------------------------------------------------

def _grads(model, x, params):
    loss, _ = model.objective(x)
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)])


def test_dreg_encoder_gradient_is_unbiased_for_iwae_and_the_decoder_gradient_is_iwae(make_card):
    torch.manual_seed(0)
    tiny = dict(latent={"shape": [2]}, encoder={"name": "mlp", "hidden": [8]},
                decoder={"name": "mlp", "hidden": [8], "likelihood": "bernoulli"})
    iwae = build_model(make_card(objective={"iwae_k": 4}, **tiny))
    dreg = build_model(make_card(objective={"iwae_k": 4, "gradient": "dreg"}, **tiny))
    dreg.load_state_dict(iwae.state_dict())
    x = dreg.prepare(torch.rand(3, 1, 8, 8))
    enc_i, enc_d = list(iwae.encoder.parameters()), list(dreg.encoder.parameters())
    dec_i, dec_d = list(iwae.decoder.parameters()), list(dreg.decoder.parameters())
    torch.manual_seed(5)
    a = _grads(iwae, x, dec_i)
    torch.manual_seed(5)
    assert torch.allclose(a, _grads(dreg, x, dec_d), atol=1e-5)      # same samples, same decoder gradient
    torch.manual_seed(5)
    loss_i = iwae.objective(x, prepared=True)[0]
    torch.manual_seed(5)
    assert torch.allclose(loss_i, dreg.objective(x, prepared=True)[0])  # the same bound's value
    reps = 400
    gi = torch.stack([_grads(iwae, x, enc_i) for _ in range(reps)])
    gd = torch.stack([_grads(dreg, x, enc_d) for _ in range(reps)])
    se = (gi.var(0) / reps + gd.var(0) / reps).sqrt()
    z = (gi.mean(0) - gd.mean(0)) / se.clamp(min=1e-8)
    assert z.abs().max() < 5.0, z.abs().max()                        # unbiased, coordinate by coordinate
    assert gd.var(0).sum() < gi.var(0).sum()                          # and with less variance


# -- the IWAE variants ------------------------------------------------------------------------------

def test_miwae_special_cases_and_the_bound_ordering(make_card):
    from zoo_plugins.objectives.iwae import ciwae_bound, iwae_bound, miwae_bound

    x = torch.rand(4, 1, 8, 8)
    base = build_model(make_card(objective={"iwae_k": 6}))
    one = build_model(make_card(objective={"name": "miwae", "M": 1, "K": 1}))
    m1 = build_model(make_card(objective={"name": "miwae", "M": 1, "K": 6}))
    one.load_state_dict(base.state_dict()), m1.load_state_dict(base.state_dict())
    torch.manual_seed(2)
    a = m1.objective(x)[0]
    torch.manual_seed(2)
    assert torch.allclose(a, base.objective(x)[0])                   # MIWAE(1, K) = IWAE_K
    xp = base.prepare(x)
    torch.manual_seed(2)
    log_lik, log_ratio = base.log_weights(xp, 1)
    torch.manual_seed(2)
    assert torch.allclose(one.objective(x)[0], -(log_lik + log_ratio).mean())   # MIWAE(1, 1) = the one-sample ELBO
    log_w = torch.randn(12, 5) * 3
    elbo, miwae, iwae = log_w.mean(0), miwae_bound(log_w.reshape(3, 4, 5)), iwae_bound(log_w)
    assert (elbo <= miwae + 1e-6).all() and (miwae <= iwae + 1e-6).all()
    assert torch.allclose(ciwae_bound(log_w, 1.0), elbo) and torch.allclose(ciwae_bound(log_w, 0.0), iwae)

"""Flow posteriors (planar, radial, IAF) under any prior, and the MAF prior.

Each family is trained a few dozen steps through the trainer, saved, reloaded, and its own
property is checked on the reloaded model: log q(z|x) against a brute-force change of variables
(autograd Jacobian determinant of the whole flow), the IAF inverse, the MAF prior's density."""
from __future__ import annotations

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from tiny_runs import card_text, train_and_reload
from zoo.diagnostics import diagnose, format_report
from zoo.distributions import LOG_2PI
from zoo.testing import check_prior

ENC = "{name: flow, base: {name: mlp, hidden: [32]}, flow: FLOW, steps: 3, context: [16], hidden: [16, 16]}"
DEC = "{name: mlp, hidden: [32], likelihood: bernoulli}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Trained and reloaded: planar under N(0, I), radial under the MAF prior, IAF under N(0, I)."""
    out = tmp_path_factory.mktemp("flows")
    specs = {"planar": "{name: standard-normal}", "radial": "{name: maf, layers: 2, hidden: 16}",
             "iaf": "{name: standard-normal}"}
    return {flow: train_and_reload(card_text(latent="[3]", encoder=ENC.replace("FLOW", flow), decoder=DEC,
                                             prior=prior, steps=60), out / flow, name=f"tiny-{flow}")
            for flow, prior in specs.items()}


def brute_force_log_q(q, z0: torch.Tensor) -> torch.Tensor:
    """log q_0(z_0|x_b) - log |det d z_T / d z_0| with the Jacobian of the whole flow from autograd, per b."""
    out = []
    for b in range(z0.shape[0]):
        def flow_b(v, b=b):  # the flow of data point b alone
            full = q.base.mean.detach().clone()
            full[b] = v
            return q.push(full)[0][b]
        jac = jacobian(flow_b, z0[b])
        log_q0 = (-0.5 * LOG_2PI - q.base.log_scale[b] - 0.5 * ((z0[b] - q.base.mean[b]) / q.base.stddev[b]) ** 2).sum()
        out.append(log_q0 - torch.linalg.slogdet(jac)[1])
    return torch.stack(out)


def sample_with_base(q, generator):
    """z ~ q and the base sample z_0 it came from (the same generator state)."""
    state = generator.get_state()
    z = q.rsample(generator=generator)
    generator.set_state(state)
    return z, q.base.rsample(generator=generator)


@pytest.mark.parametrize("flow", ["planar", "radial", "iaf"])
def test_log_q_is_the_change_of_variables_of_the_trained_flow(runs, flow):
    _, model = runs[flow]
    x = model.prepare(torch.rand(5, 1, 8, 8))
    with torch.no_grad():
        q = model.encoder(x)
        g = torch.Generator().manual_seed(3)
        z, z0 = sample_with_base(q, g)
        assert torch.allclose(q.push(z0)[0], z)
        log_q = q.log_prob(z)
    assert torch.allclose(log_q, brute_force_log_q(q, z0), atol=1e-4)
    # the flow moved the samples: its log-det is not zero, so the check is not trivially the base's
    assert (q.base.log_prob(z0) - log_q).abs().max() > 1e-3


@pytest.mark.parametrize("flow", ["planar", "radial"])
def test_planar_and_radial_refuse_log_q_of_other_points_and_diagnose_says_why(runs, flow):
    result, model = runs[flow]
    with torch.no_grad():
        q = model.encode(torch.rand(4, 1, 8, 8))
        z = q.rsample()
        with pytest.raises(ValueError, match="no closed-form inverse"):
            q.log_prob(z.clone())
    r = result.report
    assert r["mutual_information"] is None and r["marginal_kl"] is None
    assert "no closed-form inverse" in r["mi_estimator"]
    assert r["kl_per_dim"] is None and "does not factorise" in r["kl_per_dim_note"]
    assert r["nll"] <= -r["elbo"] + 1.0 and math.isfinite(r["nll"])


def test_iaf_inverts_given_each_points_context_and_splits_the_rate(runs):
    result, model = runs["iaf"]
    x = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        q = model.encode(x)
        z = q.rsample(2)                                     # [2, 6, 3]
        cached = q.log_prob(z)
        inverted = q.log_prob(z.clone())                     # not the cached tensor: inverts the flow
        assert torch.allclose(cached, inverted, atol=1e-4)
        # log q(z_m | x_b) for every pair equals scoring z_m under posterior b alone
        flat = z.reshape(12, 3)
        pairwise = torch.stack([q.log_prob(flat[m].expand(6, 3).clone()) for m in range(12)])
        assert torch.allclose(q.cross_log_prob(flat, chunk=7), pairwise, atol=1e-4)
    r = diagnose(model, "zoo:digits", iwae_k=8, max_points=150, mi_samples=5)
    assert 0 <= r["mutual_information"] <= math.log(150) + 1e-6
    assert r["mutual_information"] + r["marginal_kl"] == pytest.approx(r["rate"], abs=0.25)
    assert r["nll"] <= -r["elbo"] + 0.5
    assert "I_q(x;z)" in format_report(r) and "n/a" not in format_report(r).split("NLL")[0]


def test_flow_posterior_under_the_vampprior_and_realnvp(tmp_path):
    """Usable under any prior: the IAF posterior scores the VampPrior's mixture (its cross_log_prob)."""
    from zoo.assemble import build_model
    from zoo.cards import parse_card

    for prior in ("{name: vampprior, components: 4}", "{name: realnvp, layers: 2, hidden: 8}"):
        model = build_model(parse_card(card_text(latent="[3]", encoder=ENC.replace("FLOW", "iaf"), decoder=DEC,
                                                 prior=prior), name="any-prior"))
        loss, terms = model.objective(torch.rand(5, 1, 8, 8))
        loss.backward()
        assert torch.isfinite(loss) and terms.rate.shape == (5,)
        assert all(p.grad is not None for p in model.encoder.mades.parameters() if p.requires_grad)


def test_flow_encoder_names_a_bad_base_or_flow():
    from zoo.assemble import build_model
    from zoo.cards import parse_card
    from zoo.errors import CardError

    with pytest.raises(CardError, match="flow must be one of"):
        build_model(parse_card(card_text(latent="[3]", encoder=ENC.replace("FLOW", "sylvester"), decoder=DEC,
                                         prior="{name: standard-normal}"), name="bad"))
    bad_base = "{name: flow, base: {name: gmm-posterior}, flow: planar}"
    with pytest.raises(CardError, match="base must give a diagonal Gaussian"):
        build_model(parse_card(card_text(latent="[3]", encoder=bad_base, decoder=DEC,
                                         prior="{name: standard-normal}"), name="bad-base"))


# -- the MAF prior --------------------------------------------------------------------------------
def test_maf_prior_log_prob_is_the_change_of_variables_and_sampling_inverts(runs):
    _, model = runs["radial"]                                # trained under the MAF prior
    prior = model.prior
    z = torch.randn(6, 3)
    with torch.no_grad():
        u, log_det = prior.forward_flow(z)
    for b in range(6):
        jac = jacobian(lambda v: prior.forward_flow(v[None])[0][0], z[b])
        brute = -0.5 * (u[b] ** 2 + LOG_2PI).sum() + torch.linalg.slogdet(jac)[1]
        assert torch.allclose(prior.log_prob(z[b:b + 1])[0], brute, atol=1e-5)
        assert torch.allclose(log_det[b], torch.linalg.slogdet(jac)[1], atol=1e-5)
    with torch.no_grad():  # sample() inverts the flow: f(sample) is the Gaussian noise it started from
        s = prior.sample(8, generator=torch.Generator().manual_seed(0))
        assert torch.allclose(prior.forward_flow(s)[0], torch.randn(8, 3, generator=torch.Generator().manual_seed(0)),
                              atol=1e-4)
    # trained: no longer the standard normal it started as
    std = -0.5 * (z ** 2 + LOG_2PI).sum(-1)
    assert not torch.allclose(prior.log_prob(z), std, atol=1e-3)


def test_maf_layer_is_autoregressive():
    from zoo_plugins.normalizing_flows.maf import MAFPrior

    prior = MAFPrior(latent_shape=(4,), layers=1, hidden=16)
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(0.5 * torch.randn_like(p))
    jac = jacobian(lambda v: prior.forward_flow(v[None])[0][0], torch.randn(4))
    assert torch.allclose(torch.triu(jac, 1), torch.zeros(4, 4))      # u_i depends on z_<=i only
    assert (torch.tril(jac, -1).abs() > 0).any()


def test_maf_prior_under_a_gaussian_encoder_splits_the_rate(tmp_path):
    result, _ = train_and_reload(card_text(latent="[3]", encoder="{name: mlp, hidden: [32]}", decoder=DEC,
                                           prior="{name: maf, layers: 2, hidden: 16}", steps=60),
                                 tmp_path / "maf", "tiny-maf")
    r = result.report
    # the rate is a one-sample estimate, the split uses 10 samples per point: equal up to MC noise
    assert r["mutual_information"] + r["marginal_kl"] == pytest.approx(r["rate"], abs=0.3)
    assert 0 < r["mutual_information"] <= math.log(r["n"])
    assert r["kl_per_dim"] is None and "does not factorise" in r["kl_per_dim_note"]


@pytest.mark.parametrize("latent_shape", [(2,), (5,)])
def test_maf_prior_conforms(latent_shape):
    report = check_prior("maf", latent_shape=latent_shape, prior_args={"layers": 3, "hidden": 16}, mc_samples=100_000)
    assert {"shapes", "generator", "normalised", "gradients", "dtype", "safetensors", "in a VAE"} <= set(report["passed"])

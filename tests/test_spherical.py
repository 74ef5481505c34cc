"""Hyperspherical VAE: von Mises-Fisher posterior, uniform prior on the sphere, Wood's sampler and its gradient."""
from __future__ import annotations

import math

import pytest
import torch

from tiny_runs import card_text, train_and_reload
from zoo.assemble import build_model
from zoo.cards import parse_card
from zoo.errors import CardError
from zoo.testing import check_prior
from zoo_plugins.sphere.bessel import log_bessel_i
from zoo_plugins.sphere.spherical import VonMisesFisher, log_sphere_area, mean_resultant_length

ENC = "{name: vmf, hidden: [64]}"
DEC = "{name: mlp, hidden: [64], likelihood: bernoulli}"
PRIOR = "{name: hyperspherical-uniform}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("svae")
    return {loss: train_and_reload(card_text(latent="[3]", encoder=ENC, decoder=DEC, prior=PRIOR, steps=80,
                                             objective=f"{{loss: {loss}}}"), out / loss, f"tiny-svae-{loss}")
            for loss in ("rsvi", "elbo")}


def vmf(m: int, kappa: float, b: int = 1, dtype=torch.float64) -> VonMisesFisher:
    loc = torch.nn.functional.normalize(torch.randn(b, m, dtype=dtype), dim=-1)
    return VonMisesFisher(loc, torch.full((b,), kappa, dtype=dtype))


def test_trained_posteriors_sample_on_the_sphere_and_their_kl_matches_monte_carlo(runs):
    _, model = runs["rsvi"]
    with torch.no_grad():
        q = model.encode(torch.rand(4, 1, 8, 8))
        z = q.rsample(40000, generator=torch.Generator().manual_seed(0))            # [S, 4, 3]
        assert torch.allclose(z.norm(dim=-1), torch.ones(40000, 4), atol=1e-5)
        closed = model.prior.cross_entropy(q) - q.entropy()                          # KL(vMF || U), eq. 4
        mc = (q.log_prob(z) - model.prior.log_prob(z)).mean(0)
        assert torch.allclose(closed, mc, atol=0.03, rtol=0.02), (closed, mc)
        assert torch.allclose(z.mean(0), q.mean, atol=0.02)                         # E z = A_m(kappa) mu
        assert (q.kappa > 1).all() and (closed > 0).all()


@pytest.mark.parametrize("m, kappa", [(2, 0.5), (3, 5.0), (8, 2.0), (16, 50.0), (5, 500.0)])
def test_closed_form_kl_entropy_and_mean_match_monte_carlo(m, kappa):
    q = vmf(m, kappa, b=2)
    z = q.rsample(100000, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(z.norm(dim=-1), torch.ones_like(z[..., 0]), atol=1e-8)
    kl = log_sphere_area(m) - q.entropy()
    mc = (q.log_prob(z) + log_sphere_area(m)).mean(0)
    assert torch.allclose(kl, mc, atol=0.02, rtol=0.01), (kl, mc)
    assert torch.allclose(z.mean(0), q.mean, atol=0.01)


def test_full_rejection_gradient_is_unbiased_and_g_rep_alone_is_not():
    """d/dkappa E[mu^T z] = A_m'(kappa): the rsvi surrogate's gradient matches, the plain pathwise one is low."""
    m, k0, n = 3, 2.0, 200000
    kappa = torch.full((n,), k0, dtype=torch.float64, requires_grad=True)
    loc = torch.zeros(n, m, dtype=torch.float64)
    loc[:, 0] = 1
    q = VonMisesFisher(loc, kappa)
    z = q.rsample(generator=torch.Generator().manual_seed(2))
    f, rho = z[:, 0], q.score(z)
    g_rep = torch.autograd.grad(f.mean(), kappa, retain_graph=True)[0].sum()
    g_full = torch.autograd.grad((f + f.detach() * (rho - rho.detach())).mean(), kappa)[0].sum()
    k = torch.tensor(k0, dtype=torch.float64, requires_grad=True)
    true = torch.autograd.grad(mean_resultant_length(k, m), k)[0]
    assert g_full == pytest.approx(float(true), rel=0.03)
    assert g_rep < 0.8 * true


def test_log_bessel_matches_scipy_and_its_gradient():
    from scipy.special import iv

    k = torch.tensor([0.01, 0.7, 3.0, 40.0, 700.0], dtype=torch.float64, requires_grad=True)
    for v in (0.0, 0.5, 2.5, 30.0):
        value = log_bessel_i(v, k)
        finite = torch.isfinite(torch.as_tensor(iv(v, k.detach().numpy())).log())
        assert torch.allclose(value[finite], torch.as_tensor(iv(v, k.detach().numpy())).log()[finite], rtol=1e-8)
        assert torch.autograd.gradcheck(lambda t: log_bessel_i(v, t), (k,))
    assert torch.isfinite(log_bessel_i(60.0, torch.tensor([1e-3], dtype=torch.float64))).all()   # ive underflows


@pytest.mark.parametrize("loss", ["rsvi", "elbo"])
def test_diagnose_numbers_are_consistent(runs, loss):
    result, _ = runs[loss]
    r = result.report
    # rate, entropy and cross-entropy are closed form: I_q + marginal KL = rate exactly
    assert r["mutual_information"] + r["marginal_kl"] == pytest.approx(r["rate"], abs=1e-4)
    assert 0 < r["mutual_information"] <= math.log(r["n"]) + 1e-6
    assert r["kl_per_dim"] is None and "does not factorise" in r["kl_per_dim_note"] and r["latent_dims"] == 3
    assert r["nll"] <= -r["elbo"] + 0.5 and r["rate"] > 0.1


def test_rsvi_loss_value_is_the_negative_elbo(runs):
    _, model = runs["rsvi"]
    x = model.prepare(torch.rand(5, 1, 8, 8))
    torch.manual_seed(3)
    loss, terms = model.objective(x, prepared=True)
    assert loss.item() == pytest.approx(-terms.elbo.mean().item(), abs=1e-5)
    loss.backward()
    assert model.encoder.head.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("m", [2, 3, 6])
def test_hyperspherical_uniform_prior_conforms(m):
    report = check_prior("hyperspherical-uniform", latent_shape=(m,), mc_samples=100_000)
    assert {"shapes", "generator", "normalised", "gradients", "dtype", "safetensors", "in a VAE"} <= set(report["passed"])
    assert report["integral"] == pytest.approx(1.0, abs=1e-6)             # a constant density: exact


def test_vmf_parts_refuse_what_does_not_fit():
    with pytest.raises(CardError, match="manifold = 'sphere'"):
        build_model(parse_card(card_text(latent="[3]", encoder=ENC, decoder=DEC, prior="{name: standard-normal}"),
                               name="a"))
    with pytest.raises(CardError, match=r"S\^\(m-1\)"):
        build_model(parse_card(card_text(latent="[1]", encoder=ENC, decoder=DEC, prior=PRIOR), name="b"))
    model = build_model(parse_card(card_text(latent="[3]", encoder="{name: mlp, hidden: [8]}", decoder=DEC,
                                             prior=PRIOR, objective="{loss: rsvi}"), name="c"))
    with pytest.raises(ValueError, match="needs the vmf encoder"):
        model.objective(torch.rand(2, 1, 8, 8))


def test_the_kit_catches_a_wrong_density_or_samples_off_the_sphere():
    from zoo_plugins.sphere.spherical import HypersphericalUniform

    class WrongArea(HypersphericalUniform):
        def log_prob(self, z):
            return super().log_prob(z) + 0.2

    class OffSphere(HypersphericalUniform):
        def sample(self, n, generator=None):
            return 1.5 * super().sample(n, generator)

    with pytest.raises(AssertionError, match="integrates to 1.22"):
        check_prior(WrongArea, latent_shape=(3,), mc_samples=20_000)
    with pytest.raises(AssertionError, match="off the unit sphere"):
        check_prior(OffSphere, latent_shape=(3,), mc_samples=20_000)

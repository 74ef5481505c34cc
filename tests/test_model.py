"""The maths of LatentModel and its parts, checked against independent computations."""
from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo.distributions import DiagGaussian, gaussian_kl, gaussian_kl_standard_normal
from zoo.errors import ShapeError
from zoo.likelihoods import Bernoulli, DiscretizedLogistic, Gaussian
from zoo_plugins.basic.priors import MixtureOfGaussians, StandardNormal


def test_discretized_logistic_is_a_probability_mass_over_256_levels():
    lik = DiscretizedLogistic()
    levels = torch.arange(256).float() / 255 * 2 - 1                      # every 8-bit value in [-1, 1]
    for mean, log_scale in [(0.0, -2.0), (0.9, -4.0), (-1.0, 0.5), (0.3, -6.5)]:
        params = torch.tensor([mean, log_scale]).view(1, 2, 1, 1).expand(256, 2, 1, 1)
        logp = lik.log_prob_elementwise(params, levels.view(256, 1, 1, 1))
        assert abs(logp.exp().sum().item() - 1) < 2e-3


def test_bernoulli_and_gaussian_log_probs_match_torch_distributions():
    logits = torch.randn(3, 1, 4, 4)
    x = (torch.rand(3, 1, 4, 4) > 0.5).float()
    ours = Bernoulli()(logits).log_prob(x)
    ref = torch.distributions.Bernoulli(logits=logits).log_prob(x).sum((1, 2, 3))
    assert torch.allclose(ours, ref, atol=1e-5)
    g = Gaussian(variance="learned")
    params = torch.randn(3, 2, 4, 4)
    x = torch.rand(3, 1, 4, 4)
    ref = torch.distributions.Normal(params[:, :1], params[:, 1:].exp()).log_prob(x).sum((1, 2, 3))
    assert torch.allclose(g(params).log_prob(x), ref, atol=1e-4)


def test_closed_form_kls_match_torch():
    mq, sq, mp, sp = torch.randn(4, 5), torch.randn(4, 5) * 0.3, torch.randn(4, 5), torch.randn(4, 5) * 0.3
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mq, sq.exp()), torch.distributions.Normal(mp, sp.exp()))
    assert torch.allclose(gaussian_kl(mq, sq, mp, sp), ref, atol=1e-5)
    ref0 = torch.distributions.kl_divergence(torch.distributions.Normal(mq, sq.exp()), torch.distributions.Normal(0.0, 1.0))
    assert torch.allclose(gaussian_kl_standard_normal(mq, sq), ref0, atol=1e-5)


def test_cross_log_prob_matches_pairwise_log_prob():
    q = DiagGaussian(torch.randn(7, 3), torch.randn(7, 3) * 0.2)
    z = torch.randn(5, 3)
    pairwise = torch.stack([DiagGaussian(q.mean, q.log_scale).log_prob(z[m].expand(7, 3)) for m in range(5)])
    assert torch.allclose(q.cross_log_prob(z, chunk=2), pairwise, atol=1e-4)


def test_analytic_rate_agrees_with_monte_carlo():
    prior = StandardNormal(latent_shape=(3,))
    q = DiagGaussian(torch.randn(2, 3), torch.randn(2, 3) * 0.3)
    analytic = prior.cross_entropy(q) - q.entropy()
    z = q.rsample(200_000)
    mc = (q.log_prob(z) - prior.log_prob(z)).mean(0)
    assert torch.allclose(analytic, mc, atol=0.02)
    assert torch.allclose(prior.kl_per_dim(q).sum(1), analytic, atol=1e-5)


def test_mixture_prior_is_normalised_and_samples_match_it():
    prior = MixtureOfGaussians(latent_shape=(1,), components=3, init_scale=2.0)
    grid = torch.linspace(-15, 15, 30001).view(-1, 1)
    mass = prior.log_prob(grid).exp().sum() * (grid[1] - grid[0])
    assert abs(mass.item() - 1) < 1e-3
    samples = prior.sample(50_000, generator=torch.Generator().manual_seed(0))
    mean_density = (prior.log_prob(grid).exp() * grid.squeeze()).sum() * (grid[1] - grid[0])
    assert abs(samples.mean().item() - mean_density.item()) < 0.05


def test_iwae_bound_tightens_with_k_and_k1_matches_the_elbo():
    model = zoo.load("vae-mnist", pretrained=False)
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        torch.manual_seed(0)
        elbo = torch.stack([model.elbo(x).elbo for _ in range(64)]).mean(0)
        k1 = torch.stack([model.log_likelihood(x, k=1) for _ in range(64)]).mean(0)
        k50 = model.log_likelihood(x, k=50)
    assert torch.allclose(k1, elbo, rtol=1e-3)
    assert (k50.mean() >= elbo.mean() - 1e-3)


def test_wrong_image_shape_names_model_and_shapes():
    model = zoo.load("vae-mnist", pretrained=False)
    with pytest.raises(ShapeError, match=r"vae-mnist.*\[1, 28, 28\].*\[3, 32, 32\]"):
        model.elbo(torch.rand(2, 3, 32, 32))


def test_uint8_and_float_images_give_the_same_elbo():
    model = zoo.load("vae-cifar10", pretrained=False)
    x8 = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    torch.manual_seed(1)
    a = model.elbo(x8).distortion
    torch.manual_seed(1)
    b = model.elbo(x8.float() / 255).distortion
    assert torch.allclose(a, b)


def test_bits_per_dim():
    model = zoo.load("vae-mnist", pretrained=False)
    assert model.bits_per_dim(784 * math.log(2)) == pytest.approx(1.0)

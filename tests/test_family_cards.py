"""The cards of the flow-posterior, discrete-latent and hyperspherical families assemble the right parts."""
from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo import contracts as c

CARDS = {
    "vae-planar-digits": ("FlowPosterior", None),
    "vae-iaf-digits": ("InvertibleFlowPosterior", None),
    "vae-maf-mnist": ("DiagGaussian", "MAFPrior"),
    "vqvae-mnist": ("VQPosterior", "CategoricalCodes"),
    "vqvae-ar-mnist": ("VQPosterior", "AutoregressiveCodes"),
    "gumbel-vae-digits": ("GumbelPosterior", "CategoricalCodes"),
    "svae-digits": ("VonMisesFisher", "HypersphericalUniform"),
}


@pytest.mark.parametrize("name", sorted(CARDS))
def test_card_is_listed_and_assembles_its_family(name):
    assert name in zoo.list_models()
    model = zoo.load(name, pretrained=False)
    posterior, prior = CARDS[name]
    with torch.no_grad():
        q = model.encode(torch.rand(2, *model.data_shape))
    assert type(q).__name__ == posterior
    if prior:
        assert type(model.prior).__name__ == prior
    # the capabilities the diagnostics dispatch on
    assert c.has(q, c.AggregatePosterior) == (name != "vae-planar-digits")
    assert c.has(q, c.Codebook) == name.startswith("vqvae")
    if name.startswith("vqvae"):
        rate = model.elbo(torch.rand(2, *model.data_shape)).rate
        if name == "vqvae-mnist":
            assert torch.allclose(rate, torch.full((2,), 49 * math.log(32)), atol=1e-3)

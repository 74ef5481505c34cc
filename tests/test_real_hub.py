"""Against the real huggingface.co (opt in: pytest -m hub; needs internet).  Not run in CI.

The cards' pinned revisions cannot be checked from the machines this project is built on; run
this where the Hub is reachable to check that ``zoo.load("ddpm-cifar10")`` fetches the pinned
Google release and computes the same epsilon as diffusers' own loading of that revision."""
from __future__ import annotations

import pytest
import torch

import zoo

pytestmark = pytest.mark.hub


def test_ddpm_cifar10_from_the_real_hub_matches_diffusers():
    diffusers = pytest.importorskip("diffusers")
    model = zoo.load("ddpm-cifar10")
    card = zoo.get_card("ddpm-cifar10")
    assert model.info["revision"].startswith(card.zoo["weights"]["revision"][:7])
    ref = diffusers.UNet2DModel.from_pretrained("google/ddpm-cifar10-32", revision=model.info["revision"]).eval()
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(2, 3, 32, 32, generator=g), torch.tensor([10, 900])
    with torch.no_grad():
        assert torch.allclose(model.prior.unet(x, t), ref(x, t).sample, atol=1e-5)


def test_sd_vae_ft_mse_from_the_real_hub_matches_diffusers():
    """``zoo.load("stabilityai/sd-vae-ft-mse")`` (the card, its pinned commit, the converter) against diffusers'
    ``AutoencoderKL.from_pretrained`` of the same commit: posterior mean, log-variance and decoder output."""
    diffusers = pytest.importorskip("diffusers")
    model = zoo.load("stabilityai/sd-vae-ft-mse")
    card = zoo.get_card("sd-vae-ft-mse")
    assert model.name == "sd-vae-ft-mse" and model.info["revision"].startswith(card.zoo["weights"]["revision"][:7])
    ref = diffusers.AutoencoderKL.from_pretrained("stabilityai/sd-vae-ft-mse", revision=model.info["revision"]).eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        posterior = ref.encode(x).latent_dist
        q = model.encoder(x)
        assert torch.allclose(q.mean, posterior.mean, atol=1e-4)
        assert torch.allclose(2 * q.log_scale, posterior.logvar, atol=1e-4)
        z = posterior.mean.contiguous()
        assert torch.allclose(model.decoder(z).params, ref.decode(z).sample, atol=1e-4)

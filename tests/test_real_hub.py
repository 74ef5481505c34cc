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

"""The prior conformance kit (zoo.testing) over every built-in prior, and that it catches broken priors."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from zoo.registry import get_registry
from zoo.testing import check_prior


IMAGE_PRIORS = {"ddpm"}  # priors over image-shaped latents [C, H, W]: checked below
BOUND_PRIORS = {"two-stage-vae", "vdm"}  # log_prob is a bound (exact = False): checked in tests/test_posthoc.py, tests/test_vdm.py


@pytest.mark.parametrize("name", sorted(set(get_registry().names("prior")) - IMAGE_PRIORS - BOUND_PRIORS))
def test_builtin_prior_conforms(name):
    report = check_prior(name, latent_shape=(2,), mc_samples=100_000)
    assert {"shapes", "generator", "normalised", "gradients", "dtype", "safetensors", "in a VAE"} <= set(report["passed"])


def test_ddpm_prior_conforms_as_a_latent_prior():
    """The diffusion prior over a 2x8x8 latent (as in ldm-mnist): its log_prob is a bound, so the
    normalisation check is skipped and says why; every other check passes."""
    args = {"unet": {"channels": 16, "channel_mult": [1, 2], "num_res_blocks": 1, "attention_resolutions": [],
                     "norm_groups": 4}, "timesteps": 50, "eval_timesteps": 4}
    report = check_prior("ddpm", latent_shape=(2, 8, 8), data_shape=(1, 8, 8), prior_args=args,
                         encoder={"name": "conv", "channels": [8]}, decoder={"name": "conv", "channels": [8, 8],
                                                                             "likelihood": "bernoulli"},
                         vae_steps=2)
    assert {"shapes", "generator", "gradients", "dtype", "safetensors", "in a VAE"} <= set(report["passed"])
    assert "normalised" in str(report["skipped"]) and "bound" in str(report["skipped"])


@pytest.mark.parametrize("name", ["realnvp", "ladder", "vampprior", "mixture-of-gaussians"])
def test_builtin_prior_conforms_in_more_dimensions(name):
    check_prior(name, latent_shape=(4,), mc_samples=100_000)


def test_pytest_plugin_fixture_is_the_kit(zoo_check_prior):
    """The pytest11 entry point (zoo = zoo.testing) gives every test suite the fixture."""
    assert zoo_check_prior is check_prior
    zoo_check_prior("standard-normal", latent_shape=(3,))


def test_third_party_prior_by_factory():
    sys.path.insert(0, str(Path(__file__).parent / "plugins" / "zoo-laplace-prior"))
    try:
        from zoo_laplace_prior import LaplacePrior
    finally:
        sys.path.pop(0)
    # the example third-party prior passes every check (a float32-only prior is caught: Float32Only below)
    report = check_prior(LaplacePrior, latent_shape=(2,), mc_samples=100_000)
    assert {"normalised", "dtype", "safetensors", "in a VAE"} <= set(report["passed"])


# -- broken priors are caught, with a message naming the check -------------------------------------
class Base(nn.Module):
    exact = True

    def __init__(self, *, latent_shape, data_shape=None):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        self.loc = nn.Parameter(torch.zeros(latent_shape))

    def log_prob(self, z):
        return (-0.5 * ((z - self.loc) ** 2 + math.log(2 * math.pi))).sum(-1)

    def sample(self, n, generator=None):
        return self.loc.detach() + torch.randn((n, *self.latent_shape), generator=generator,
                                                dtype=self.loc.dtype, device=self.loc.device)


class Unnormalised(Base):
    def log_prob(self, z):
        return super().log_prob(z) + 0.5


class WrongSamples(Base):
    def sample(self, n, generator=None):
        return super().sample(n, generator) * 3.0 + 1.0


class FlatLogProb(Base):
    def log_prob(self, z):
        return super().log_prob(z).reshape(-1)


class IgnoresGenerator(Base):
    def sample(self, n, generator=None):
        return super().sample(n, None)


class Float32Only(Base):
    def sample(self, n, generator=None):
        return super().sample(n, generator).float()


class LosesState(Base):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.register_buffer("shift", torch.randn(self.latent_shape), persistent=False)

    def log_prob(self, z):
        return super().log_prob(z - self.shift)

    def sample(self, n, generator=None):
        return super().sample(n, generator) + self.shift


class DetachedParameter(Base):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.unused = nn.Parameter(torch.ones(2))


@pytest.mark.parametrize("prior, check", [
    (Unnormalised, "normalised"), (WrongSamples, "normalised"), (FlatLogProb, "shapes"),
    (IgnoresGenerator, "generator"), (Float32Only, "dtype"), (LosesState, "safetensors"),
    (DetachedParameter, "gradients"),
])
def test_kit_catches_broken_priors(prior, check):
    with pytest.raises(AssertionError, match=rf"prior '{prior.__name__}' fails the '{check}' check"):
        check_prior(prior, latent_shape=(2,), mc_samples=50_000)


def test_good_reference_prior_passes():
    check_prior(Base, latent_shape=(2,), mc_samples=50_000)

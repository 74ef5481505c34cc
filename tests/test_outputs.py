"""Typed outputs (issue 20): ``model(x)`` returns a ModelOutput; ``model.decode(z).log_prob`` takes images as the
model does and gives the distortion the ELBO reports for the same z, or refuses what is outside its space by name."""
from __future__ import annotations

import pytest
import torch

import zoo
from zoo.data import load_tensors
from zoo.errors import InputError, ShapeError
from zoo.outputs import ImageObservation, ModelOutput


@pytest.fixture(scope="module")
def digits():
    return load_tensors("zoo:digits", "test")[:8]


@pytest.mark.parametrize("name", ["vae-digits", "ddpm-digits"])
def test_forward_returns_the_typed_output_with_the_elbo(name, digits):
    model = zoo.load(name)
    torch.manual_seed(3)
    out = model(digits)
    assert isinstance(out, ModelOutput) and isinstance(out.observation, ImageObservation)
    assert out.elbo.shape == out.distortion.shape == out.rate.shape == (8,)
    assert torch.allclose(out.elbo, -(out.distortion + out.rate))
    torch.manual_seed(3)
    assert torch.equal(model.elbo(digits).elbo, out.elbo)          # the same bound, the same random state
    assert out.z is not None and out.posterior is not None
    assert "ModelOutput(batch=8, elbo=" in repr(out) and len(repr(out)) < 200


@pytest.mark.parametrize("name", ["vae-digits", "ddpm-digits"])
def test_decode_log_prob_on_uint8_and_unit_images_is_the_elbos_distortion(name, digits):
    """Bernoulli (binarised) and discretised Gaussian on [-1, 1]: both prepare images as the ELBO does."""
    model = zoo.load(name)
    torch.manual_seed(0)
    with torch.no_grad():
        out = model(digits)
        obs = model.decode(out.z)
        assert torch.equal(obs.log_prob(digits), -out.distortion)                    # uint8 0..255
        assert torch.allclose(obs.log_prob(digits.float() / 255), -out.distortion, atol=1e-5, rtol=0)  # [0, 1]
        assert torch.equal(out.observation.log_prob(digits), -out.distortion)
        assert obs.images.min() >= 0 and obs.images.max() <= 1 and obs.images.shape == digits.shape


def test_decode_log_prob_refuses_images_outside_the_models_space_by_name(digits):
    model = zoo.load("vae-digits")
    obs = model.decode(torch.zeros(8, 16))
    with pytest.raises(InputError, match=r"'vae-digits'.*\[0, 1\].*255"):
        obs.log_prob(digits.float())                       # floats still in 0..255
    with pytest.raises(InputError, match=r"'vae-digits'.*\[0, 1\]"):
        obs.log_prob(digits.float() / 127.5 - 1)           # [-1, 1]
    with pytest.raises(ShapeError, match=r"'vae-digits' expects images of shape \[1, 8, 8\]"):
        obs.log_prob(torch.zeros(8, 1, 28, 28))
    with pytest.raises(InputError, match="uint8"):
        obs.log_prob(digits.long())


def test_forward_of_an_exact_discrete_posterior_has_no_single_z(digits):
    model = zoo.load("gmm-digits")
    out = model(digits)
    assert out.z is None and out.observation is None
    assert torch.allclose(out.elbo, model.elbo(digits).elbo)


def test_elbo_terms_print_a_short_summary(digits):
    terms = zoo.load("vae-digits").elbo(digits)
    text = repr(terms)
    assert text.startswith("ELBO(batch=8, elbo=") and "nats (batch means)" in text and "tensor" not in text

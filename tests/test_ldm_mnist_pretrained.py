"""``ldm-mnist`` from its packaged file: a DDPM prior over vae-mnist's (frozen) latent beats vae-mnist's
standard-normal prior on the same test split, and its latent is not collapsed (issue 24).

Both against the test ELBO of vae-mnist's card (measured from its packaged file).  The fast test compares the
two models image by image on a subset (same encoder and decoder, same z draws: the paired difference is the
prior's alone); the other re-measures the card's results from the packaged file with the card's estimator on
all 500 test images."""
from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo.data import load_tensors

VAE_MNIST_ELBO = zoo.get_card("vae-mnist").zoo["results"]["elbo"]


def test_ldm_mnist_beats_vae_mnist_on_a_test_subset_paired():
    torch.manual_seed(0)
    ldm, vae = zoo.load("ldm-mnist").eval(), zoo.load("vae-mnist").eval()
    assert ldm.info["source"] == "packaged"
    x = load_tensors("zoo:mnist-5k", "test")[:100]
    with torch.no_grad():
        torch.manual_seed(1)
        a = ldm.elbo(x)
        torch.manual_seed(1)
        b = vae.elbo(x)
    assert torch.allclose(a.distortion, b.distortion)            # the same encoder, decoder and z draws
    gain = a.elbo - b.elbo                                       # the prior's part alone
    se = float(gain.std()) / math.sqrt(len(gain))
    assert float(gain.mean()) > 3 * se, (float(gain.mean()), se)
    results = ldm.card.zoo["results"]
    assert results["elbo"] - results["elbo_se"] > VAE_MNIST_ELBO
    assert results["mutual_information"] > 5.0 and results["active_units"] == 16


def test_ldm_mnist_card_results_are_measured_from_the_packaged_file():
    """The card's ELBO terms re-measured from the packaged file with the card's seed and estimators; I_q on the
    test split itself (``mi_split="same"``: the card's own I_q moved to the 4,500 train images, a minute more)."""
    from zoo.diagnostics import diagnose

    card = zoo.get_card("ldm-mnist")
    results, train = card.zoo["results"], card.zoo["train"]
    measured = diagnose(zoo.load("ldm-mnist"), "zoo:mnist-5k", split="test", iwae_k=int(train.get("eval_iwae_k", 1)),
                        seed=results["eval_seed"], mi_split="same")
    assert measured["n"] == 500
    assert measured["elbo"] - measured["elbo_se"] > VAE_MNIST_ELBO, (measured["elbo"], measured["elbo_se"])
    assert measured["mutual_information"] > 5.0                  # not collapsed (the old card: 0.49 nats)
    for key in ("elbo", "distortion", "rate", "active_units"):
        expected = results[key]
        assert measured[key] == pytest.approx(expected, abs=2e-3 + 1e-4 * abs(expected)), key



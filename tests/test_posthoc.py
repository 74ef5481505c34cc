"""Post-hoc priors (zoo fit-prior): a density fitted to a trained run's codes becomes a new run.

One tiny seeded vae-digits-like run (4-d latent, 150 steps) is trained once per module; each test fits
a prior to it.  The seed's footnote is the property under test: a more expressive prior fitted to the
aggregate posterior lowers the rate's marginal KL and so raises the ELBO on the training split."""
from __future__ import annotations

import json
import types

import pytest
import torch

import zoo
from zoo.cards import parse_card
from zoo.errors import TrainingError, UnsupportedModelError, UsageError
from zoo.hookspecs import hookimpl
from zoo.posthoc import check_flat_gaussian, fit_prior
from zoo.training.loop import train

from tiny_runs import card_text

MEASURE = {"iwae_k": 4, "max_points": 400, "draws": 4}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("posthoc") / "vae"
    text = card_text(latent="[4]", encoder="{name: mlp, hidden: [64]}",
                     decoder="{name: mlp, hidden: [64], likelihood: bernoulli}", prior="{name: standard-normal}",
                     steps=150)
    train(parse_card(text, name="tiny-vae"), out=folder, progress=False)
    return folder


def test_gmm_round_trip_lowers_the_marginal_kl(run, tmp_path):
    out = tmp_path / "vae-gmm"
    model = fit_prior(run, prior="gmm", out=out, components=10, **MEASURE)
    loaded = zoo.load(out)
    card = json.loads((out / "config.json").read_text())["zoo"]
    # the card names the prior plugin, its arguments and where it was fitted
    assert card["prior"]["name"] == "mixture-of-gaussians" and card["prior"]["components"] == 10
    src = card["prior"]["fitted_from"]
    assert src["run"] == str(run) and src["codes"] == "sample" and src["n_codes"] > 1000 and src["prior"] == {
        "name": "standard-normal"}
    # the weights are the run's encoder/decoder plus the fitted prior
    original = zoo.load(run)
    for key, value in original.state_dict().items():
        if not key.startswith("prior."):
            assert torch.equal(loaded.state_dict()[key], value), key
    assert torch.equal(loaded.prior.means, model.prior.means) and loaded.prior.means.shape == (10, 4)
    assert (out / ".zoo-run").is_file()
    # re-measured on the training split, with the old prior at the same seed in 'before'
    r = card["results"]
    assert r["split"] == "train" and r["nll_kind"] != "negative ELBO" and r["iwae_k"] == 4
    b = r["before"]
    assert r["rate"] < b["rate"] - 0.05 and r["elbo"] > b["elbo"] + 0.05 and r["marginal_kl"] <= b["marginal_kl"]
    assert r["nll"] < b["nll"]
    # the mixture prior's KL terms say how they were computed, with their SE, and are never negative
    assert r["rate_kind"] == "Monte Carlo KL" and b["rate_kind"] == "exact KL" and r["rate_se"] > 0
    assert "Monte Carlo" in r["rate_estimator"] and r["rate"] >= 0
    assert 0 <= r["marginal_kl"] <= r["rate"] and r["marginal_kl_se"] > 0 and r["marginal_kl_kind"] in ("value", "upper bound")
    # sampling draws from the fitted prior
    z = loaded.prior.sample(2000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
            assert float(loaded.prior.log_prob(z).mean()) > float(original.prior.log_prob(z).mean())
    assert loaded.sample(3).shape == (3, 1, 8, 8)


def test_maf_and_second_stage_vae(run, tmp_path):
    maf = fit_prior(run, prior="maf", out=tmp_path / "maf", layers=2, hidden=16, iters=200, **MEASURE)
    r = maf.card.zoo["results"]
    assert type(zoo.load(tmp_path / "maf").prior).__name__ == "MAFPrior"
    assert r["elbo"] > r["before"]["elbo"] and r["rate"] < r["before"]["rate"]
    vae = fit_prior(run, prior="vae", out=tmp_path / "vae", hidden=16, iters=200, k=8, codes="mean", **MEASURE)
    loaded = zoo.load(tmp_path / "vae")
    spec = loaded.card.zoo["prior"]
    assert spec["name"] == "two-stage-vae" and spec["k"] == 8 and spec["fitted_from"]["codes"] == "mean"
    # its log p(z) is a bound: no IWAE value, the NLL is the negative ELBO, and the card says so
    r = vae.card.zoo["results"]
    assert r["nll_kind"] == "negative ELBO" and r["rate_kind"] == "upper bound"
    assert loaded.sample(2).shape == (2, 1, 8, 8)


def test_bad_inputs_are_named(run, tmp_path):
    with pytest.raises(UsageError, match="unknown prior-fitter 'nope'"):
        fit_prior(run, prior="nope", out=tmp_path / "a")
    with pytest.raises(UsageError, match="--layers"):
        fit_prior(run, prior="gmm", out=tmp_path / "a", layers=3)
    with pytest.raises(UsageError, match="is the run being fitted"):
        fit_prior(run, prior="gmm", out=run)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(TrainingError, match="not a latent-zoo run folder"):
        fit_prior(run, prior="gmm", out=tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    text = card_text(latent="[2, 2]", encoder="{name: mlp, hidden: [8]}",
                     decoder="{name: mlp, hidden: [8], likelihood: bernoulli}", prior="{name: standard-normal}")
    from zoo.assemble import build_model

    square = build_model(parse_card(text, name="square"))
    with pytest.raises(UnsupportedModelError, match=r"latent of shape \[2, 2\]"):
        check_flat_gaussian(square, torch.rand(2, 1, 8, 8))
    sphere = zoo.build("svae-digits")  # a flat latent, but a von Mises-Fisher posterior
    with pytest.raises(UnsupportedModelError, match="VonMisesFisher posterior.*diagonal-Gaussian"):
        check_flat_gaussian(sphere, torch.rand(2, 1, 8, 8))


def test_a_plugin_prior_fitter_through_the_hook(run, tmp_path, fresh_registry):
    """register_prior_fitters: a third-party fitter (one Gaussian at the codes' mean and spread) is found by name."""
    from zoo.contracts import FittedPrior, SamplerOption
    from zoo_plugins.basic.priors import MixtureOfGaussians

    seen = {}

    class Moment:
        options = {"shrink": SamplerOption(float, 1.0, "scale of the fitted spread")}

        def __call__(self, z, *, latent_shape, seed, shrink=1.0):
            seen["n"] = len(z)
            prior = MixtureOfGaussians(latent_shape=latent_shape, components=1)
            with torch.no_grad():
                prior.means.copy_(z.mean(0, keepdim=True))
                prior.log_scales.copy_((z.std(0, keepdim=True) * shrink).log())
            return FittedPrior("mixture-of-gaussians", {"components": 1}, prior, [0.0], method="moments")

    plugin = types.ModuleType("moments")
    plugin.register_prior_fitters = hookimpl(lambda register: register("moments", Moment()))
    fresh_registry.add_plugin(plugin)
    model = fit_prior(run, prior="moments", out=tmp_path / "m", shrink=0.5, codes="mean", **MEASURE)
    assert seen["n"] > 1000  # posterior means: one code per training image
    assert model.card.zoo["prior"]["fitted_from"]["method"] == "moments"
    assert model.card.zoo["prior"]["fitted_from"]["options"] == {"shrink": 0.5}


def test_cli_fit_prior_then_sample(run, tmp_path, capsys):
    from zoo.cli import main

    out = tmp_path / "cli"
    assert main(["fit-prior", str(run), "--prior", "gmm", "--components", "3", "--out", str(out), "--k", "2",
                 "--max-points", "200", "--draws", "2"]) == 0
    assert "elbo" in capsys.readouterr().out
    assert main(["sample", str(out), "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["fit-prior", str(run), "--prior", "gmm", "--components", "x", "--out", str(tmp_path / "b")]) == 2
    assert main(["fit-prior", str(run), "--prior", "gmm", "--out", str(out)]) == 1  # a run already there


def test_two_stage_vae_prior_conforms():
    """The conformance kit on the second-stage VAE prior: its log_prob is a bound, so 'normalised' is skipped."""
    from zoo.testing import check_prior

    report = check_prior("two-stage-vae", latent_shape=(2,), prior_args={"hidden": [8], "k": 4}, vae_steps=2)
    assert {"shapes", "generator", "gradients", "dtype", "safetensors", "in a VAE"} <= set(report["passed"])
    assert "normalised" in str(report["skipped"])

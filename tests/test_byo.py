"""Bring your own module: zoo.build from nn.Modules written in a test module (tests/byo_modules.py), trained,
saved, reloaded only with trust_modules=True; a missing import path and a contract violation are named."""
from __future__ import annotations

import json

import pytest
import torch
import zoo
from zoo.errors import CardError, ContractError, UntrustedCodeError
from zoo.model import LatentModel

from byo_modules import NoLikelihoodDecoder, TinyDecoder, TinyEncoder, UndeclaredEncoder

SHAPES = {"data_shape": (1, 8, 8), "latent_shape": (4,)}
STEPS = {"steps": 20, "batch_size": 64, "eval_iwae_k": 2, "sample_every": 0, "eval_every": 0, "seed": 0}


def _elbo(model, x):
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        return model.elbo(x).elbo


def test_build_train_save_reload(tmp_path):
    enc, dec = TinyEncoder(), TinyDecoder()
    model = zoo.build(encoder=enc, decoder=dec, prior="standard-normal", **SHAPES)
    assert model.encoder is enc and model.decoder is dec and type(model.prior).__name__ == "StandardNormal"
    before = enc.net[1].weight.detach().clone()
    result = zoo.train(model, data="zoo:digits", out=tmp_path / "run", progress=False, **STEPS)
    assert result.model is model and not torch.equal(before, enc.net[1].weight)  # trained in place
    card = json.loads((tmp_path / "run" / "config.json").read_text())["zoo"]
    assert card["encoder"] == {"module": "byo_modules:TinyEncoder", "args": {"data_dims": 64, "latent": 4, "hidden": 32}}
    assert card["decoder"]["module"] == "byo_modules:TinyDecoder" and card["prior"] == {"name": "standard-normal"}
    assert card["data"]["source"] == "zoo:digits" and "elbo" in card["results"]
    x = torch.rand(5, 1, 8, 8)
    # the card names code to import: refused without the explicit opt-in, naming the path
    with pytest.raises(UntrustedCodeError, match="byo_modules:TinyEncoder.*trust_modules=True"):
        zoo.load(tmp_path / "run")
    loaded = zoo.load(tmp_path / "run", trust_modules=True)
    assert isinstance(loaded.encoder, TinyEncoder) and torch.allclose(_elbo(loaded, x), _elbo(model.eval(), x))
    # save_pretrained of the loaded model: safetensors + card, and from_pretrained back
    loaded.save_pretrained(tmp_path / "copy")
    assert (tmp_path / "copy" / "model.safetensors").is_file()
    again = LatentModel.from_pretrained(str(tmp_path / "copy"), trust_modules=True)
    assert torch.allclose(_elbo(again, x), _elbo(loaded, x))


def test_missing_import_path_is_refused_by_name(tmp_path):
    model = zoo.build(encoder=TinyEncoder(), decoder=TinyDecoder(), **SHAPES)
    model.save_pretrained(tmp_path / "m")
    config = tmp_path / "m" / "config.json"
    data = json.loads(config.read_text())
    data["zoo"]["decoder"]["module"] = "byo_modules_gone:TinyDecoder"
    config.write_text(json.dumps(data))
    with pytest.raises(CardError, match=r"zoo\.decoder\.module.*cannot import 'byo_modules_gone:TinyDecoder'"):
        zoo.load(tmp_path / "m", trust_modules=True)


def test_contract_violations_are_named():
    with pytest.raises(ContractError, match="decoder NoLikelihoodDecoder lacks the required member.*'likelihood'"):
        zoo.build(encoder=TinyEncoder(), decoder=NoLikelihoodDecoder(), **SHAPES)
    with pytest.raises(ContractError, match="encoder object is not a torch.nn.Module"):
        zoo.build(encoder=object(), decoder=TinyDecoder(), **SHAPES)


def test_unsaveable_modules_are_refused_on_save(tmp_path):
    class Local(TinyEncoder):
        pass

    with pytest.raises(ContractError, match="<locals>.*define it at module level"):
        zoo.build(encoder=Local(), decoder=TinyDecoder(), **SHAPES).save_pretrained(tmp_path / "a")

    with pytest.raises(ContractError, match="byo_modules:UndeclaredEncoder.*'latent'.*`config`"):
        zoo.build(encoder=UndeclaredEncoder(4), decoder=TinyDecoder(), **SHAPES).save_pretrained(tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_registered_names_and_by_name_still_work():
    model = zoo.build(encoder={"name": "mlp", "hidden": [16]}, decoder=TinyDecoder(), prior="mixture-of-gaussians",
                      **SHAPES)
    assert type(model.encoder).__name__ == "MLPEncoder" and model.card.zoo["encoder"] == {"name": "mlp", "hidden": [16]}
    assert model.elbo(torch.rand(3, 1, 8, 8)).elbo.shape == (3,)
    named = zoo.build("vae-digits")
    assert isinstance(named, LatentModel) and named.card.name == "vae-digits"


def test_a_built_model_trains_the_objective_it_names(tmp_path):
    """zoo.build(..., objective={"name": "factorvae"}) assembles FactorVAE as a card would (issue 23): the model trains
    it, so its discriminator is stepped by its own optimiser and its loss is logged; the reloaded copy is the same."""
    objective = {"name": "factorvae", "gamma": 5.0, "hidden": [16], "discriminator_lr": 0.003}
    torch.manual_seed(0)
    model = zoo.build(encoder=TinyEncoder(), decoder=TinyDecoder(), prior="standard-normal", objective=objective,
                      **SHAPES)
    assert type(model.training_objective).__name__ == "FactorVAE" and model.plugins["objective"]["name"] == "factorvae"
    before = {k: v.clone() for k, v in model.training_objective.state_dict().items()}
    zoo.train(model, data="zoo:digits", out=tmp_path / "run", progress=False, **STEPS)
    after = model.training_objective.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before)   # every discriminator tensor was stepped
    assert "train/discriminator_loss" in (tmp_path / "run" / "metrics.csv").read_text()
    loaded = zoo.load(tmp_path / "run", trust_modules=True)
    assert all(torch.equal(v, loaded.training_objective.state_dict()[k]) for k, v in after.items())

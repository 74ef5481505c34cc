"""A third-party distribution written from README's contract, through every new hook, used by name.

tests/plugins/zoo-student (its own pyproject.toml) registers a Student-t prior, a Beta likelihood,
a weights converter and a tempered sampler; it is pip-installed into a temporary folder, found
through the ``zoo`` entry-point group, and each piece is used by name from a card.  It also ships
two components written against an incomplete reading of the contract, which must be refused by
name: before training where the card shows it, at the first batch where only the data does.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
from zoo.errors import CardError, ContractError

from make_cards import register_card

PACKAGE = Path(__file__).parent / "plugins" / "zoo-student"
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target = tmp_path_factory.mktemp("site-student")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(PACKAGE)], check=True)
    sys.path.insert(0, str(target))
    yield target
    sys.path.remove(str(target))
    sys.modules.pop("zoo_student", None)


@pytest.fixture
def registry(installed, fresh_registry):
    return fresh_registry


def card(registry, tmp_path, name: str, **zoo_block) -> str:
    """A card file from a ``zoo:`` block, registered in-process; returns the model name."""
    return register_card(tmp_path, name, zoo_block)


def test_every_new_hook_registers_by_name(registry):
    for kind, name in (("prior", "student-t"), ("likelihood", "beta"), ("converter", "student-v0"),
                       ("sampler", "tempered"), ("decoder", "bare-decoder")):
        entry = registry.get(kind, name)
        assert entry.owner.distribution == "zoo-student" and entry.owner.version == "0.2.0"
        assert registry.get(kind, f"zoo-student:{name}") is entry
    assert not registry.failures


def test_likelihood_and_sampler_by_name_from_a_card(registry, tmp_path):
    from zoo.testing import check_likelihood

    result = zoo.train("vae-student-digits", out=tmp_path / "run", progress=False)
    model = zoo.load(tmp_path / "run")
    assert type(model.decoder.likelihood).__name__ == "BetaLikelihood"   # decoder: {likelihood: beta}
    assert result.report["likelihood"] == "beta" and result.report["discrete_likelihood"] is False
    assert model.plugins["prior"]["distribution"] == "zoo-student"
    # the card's sampler: {name: tempered, temperature: 0.8} is what model.sample uses
    images = model.sample(4, generator=torch.Generator().manual_seed(3))
    z = 0.8 * model.prior.sample(4, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(images, model.to_images(model.decoder(z).mean))
    hot = model.sample(4, sampler="tempered", temperature=2.0, generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(hot, images)
    check_likelihood("beta")                     # the third-party likelihood passes the kit


def test_cli_forwards_the_samplers_option(registry, tmp_path, capsys):
    from zoo.cli import main

    zoo.train("vae-student-digits", out=tmp_path / "run", steps=5, progress=False)
    out = tmp_path / "grid.png"
    assert main(["sample", str(tmp_path / "run"), "--n", "4", "--temperature", "0.5", "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    assert main(["sample", str(tmp_path / "run"), "--n", "4", "--steps", "5", "--out", str(out)]) == 2
    assert "no sampler of its prior takes the option(s) --steps" in capsys.readouterr().err


def test_converter_by_name_from_a_card(registry, tmp_path, local_hub):
    """A v0 checkpoint (nu stored as prior.df) on the Hub, loaded through the card's converter."""
    from huggingface_hub import HfApi
    from safetensors.torch import save_file

    name = card(registry, tmp_path, "student-v0-digits", data={"source": "zoo:digits", "shape": [1, 8, 8]},
                latent={"shape": [4]}, encoder={"name": "mlp", "hidden": [16]},
                decoder={"name": "mlp", "hidden": [16], "likelihood": "beta"}, prior={"name": "student-t"})
    reference = zoo.build(name)
    state = {k: v for k, v in reference.state_dict().items() if k != "prior.log_df"}
    state["prior.df"] = torch.tensor(7.0)
    folder = tmp_path / "upload"
    folder.mkdir()
    save_file(state, folder / "model.safetensors")
    api = HfApi(endpoint=local_hub.url, token=local_hub.token)
    api.create_repo("someone/student-v0", exist_ok=True)
    commit = api.upload_folder(repo_id="someone/student-v0", folder_path=str(folder)).oid
    name = card(registry, tmp_path, "student-v0-pinned", extends="student-v0-digits",
                weights={"repo": "someone/student-v0", "revision": commit, "file": "model.safetensors",
                         "converter": "student-v0"})
    model = zoo.load(name)
    assert model.info["converter"] == "student-v0"
    assert float(model.prior.log_df.detach().exp()) == pytest.approx(7.0)
    expected = {k: v for k, v in state.items() if k != "prior.df"}
    reference.load_state_dict({**expected, "prior.log_df": torch.tensor(7.0).log()})
    x = torch.rand(3, 1, 8, 8)
    assert torch.allclose(model.encode(x).mean, reference.eval().encode(x).mean)


def test_a_decoder_missing_a_required_member_is_refused_before_training(registry, tmp_path):
    name = card(registry, tmp_path, "bare", data={"source": "zoo:digits", "shape": [1, 8, 8]}, latent={"shape": [4]},
                encoder={"name": "mlp", "hidden": [16]}, decoder={"name": "bare-decoder"}, prior={"name": "student-t"})
    with pytest.raises(CardError) as err:
        zoo.build(name)
    message = str(err.value)
    assert "'discrete'" in message and "zoo-student" in message and "zoo.decoder" in message
    with pytest.raises(CardError, match="'discrete'"):
        zoo.train(name, out=tmp_path / "never", progress=False)
    assert not (tmp_path / "never").exists()       # refused before anything was written


def test_a_prior_returning_a_scalar_is_named_at_the_first_batch(registry, tmp_path):
    name = card(registry, tmp_path, "scalar", data={"source": "zoo:digits", "shape": [1, 8, 8]}, latent={"shape": [4]},
                encoder={"name": "mlp", "hidden": [16]}, decoder={"name": "mlp", "hidden": [16]},
                prior={"name": "scalar-t"}, train={"steps": 5, "batch_size": 32})
    with pytest.raises(ContractError) as err:
        zoo.train(name, out=tmp_path / "run", progress=False)
    message = str(err.value)
    assert "'scalar-t' from zoo-student" in message and "shape []" in message and "[32]" in message
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_a_continuous_prior_under_an_enumerating_posterior_is_refused(registry, tmp_path):
    name = card(registry, tmp_path, "gmm-student", data={"source": "zoo:digits", "shape": [1, 8, 8]},
                latent={"shape": [5]}, encoder={"name": "gmm-posterior"}, decoder={"name": "gmm"},
                prior={"name": "student-t"})
    with pytest.raises(CardError) as err:
        zoo.build(name)
    message = str(err.value)
    assert "support()" in message and "gmm-posterior" in message and "student-t" in message

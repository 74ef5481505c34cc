"""Every card builds and computes; malformed cards name the file and the field."""
from __future__ import annotations

import pytest
import torch

import zoo
from zoo.cards import parse_card, read_card
from zoo.errors import CardError, UnknownModelError

GOOD = """---
license: mit
zoo:
  data: {source: zoo:digits, shape: [1, 8, 8]}
  latent: {shape: [2]}
  encoder: {name: mlp, hidden: [16]}
  decoder: {name: mlp, hidden: [16], likelihood: bernoulli}
  prior: {name: standard-normal}
---
body
"""


BUILD_ONLY_PARAMETERS = 20_000_000  # above this, a CPU forward pass is too slow for the default suite


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_card_builds_and_computes_its_elbo(name):
    """Models above BUILD_ONLY_PARAMETERS (the pretrained 32px and 256px DDPM UNets) are built, not
    run; their numerics are covered elsewhere (tests/test_ddpm.py, tests/test_diffusion_unet.py)."""
    card = zoo.get_card(name)
    assert card.name == name and card.path.stem == name
    assert not any(str(k).startswith("zoo-") for k in card.metadata)   # no test-only keys in Hub metadata
    model = zoo.load(name, pretrained=False)
    assert model.data_shape == card.data_shape
    if sum(p.numel() for p in model.parameters()) > BUILD_ONLY_PARAMETERS:
        return
    x = torch.randint(0, 256, (2, *model.data_shape), dtype=torch.uint8)
    terms = model.elbo(x)
    assert terms.elbo.shape == (2,)
    assert torch.allclose(terms.elbo, -(terms.distortion + terms.rate))
    assert torch.isfinite(terms.elbo).all()
    assert model.sample(2).shape == (2, *model.data_shape)
    assert model.reconstruct(x).shape == (2, *model.data_shape)


def test_list_models_filters_by_fnmatch_pattern():
    assert zoo.list_models("vae-*") == sorted(n for n in zoo.list_models() if n.startswith("vae-"))
    assert "beta-vae-mnist" not in zoo.list_models("vae-*")
    assert zoo.list_models("*-mnist")


def test_unknown_model_name_suggests_close_names():
    with pytest.raises(UnknownModelError, match="did you mean 'vae-mnist'"):
        zoo.load("vae-mnsit")


def test_card_round_trips_through_markdown():
    card = parse_card(GOOD, name="tiny")
    again = parse_card(card.with_results({"elbo": -12.5, "nll": 11.0}).to_markdown(), name="tiny")
    assert again.zoo["results"]["elbo"] == -12.5 and again.metadata["license"] == "mit"
    assert again.zoo["encoder"] == {"name": "mlp", "hidden": [16]}


@pytest.mark.parametrize("mutate, field", [
    (lambda t: t.replace("zoo:\n", "other:\n"), "zoo"),
    (lambda t: t.replace("  latent: {shape: [2]}\n", ""), "zoo.latent"),
    (lambda t: t.replace("shape: [1, 8, 8]", "shape: [8, 8]"), "zoo.data.shape"),
    (lambda t: t.replace("shape: [2]", "shape: [-2]"), "zoo.latent.shape"),
    (lambda t: t.replace("  prior: {name: standard-normal}", "  prior: {name: standard-normal}\n  colour: red"), "zoo.colour"),
    (lambda t: t.replace("{name: standard-normal}", "{kind: standard-normal}"), "zoo.prior.name"),
    (lambda t: t.replace("source: zoo:digits, ", ""), "zoo.data.source"),
    (lambda t: t.replace("license: mit", "license: [unclosed"), "YAML"),
])
def test_malformed_card_names_file_and_field(tmp_path, mutate, field):
    path = tmp_path / "broken.md"
    path.write_text(mutate(GOOD))
    with pytest.raises(CardError) as err:
        read_card(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_card_without_front_matter(tmp_path):
    path = tmp_path / "plain.md"
    path.write_text("# just a readme\n")
    with pytest.raises(CardError, match="front matter"):
        read_card(path)


def test_unknown_plugin_in_card_names_field_and_suggests():
    from zoo.assemble import build_model

    card = parse_card(GOOD.replace("{name: standard-normal}", "{name: standard-normall}"), name="tiny")
    with pytest.raises(CardError, match=r"zoo\.prior\.name.*did you mean 'standard-normal'"):
        build_model(card)


def test_bad_component_argument_names_field_and_plugin():
    from zoo.assemble import build_model

    card = parse_card(GOOD.replace("hidden: [16]}\n  decoder", "hidden: [16], depth: 3}\n  decoder"), name="tiny")
    with pytest.raises(CardError, match=r"zoo\.encoder.*'mlp'.*latent-zoo.*depth"):
        build_model(card)


def test_card_name_must_match_file(tmp_path):
    path = tmp_path / "right.md"
    path.write_text(GOOD.replace("zoo:\n", "zoo:\n  name: wrong\n"))
    with pytest.raises(CardError, match="zoo.name"):
        read_card(path, name="right")


def test_the_checked_in_rendered_card_is_what_the_hub_reads():
    """cards/rendered/vae-mnist.md: a card as `zoo push` rendered it from a real run."""
    from pathlib import Path

    from huggingface_hub import ModelCard

    path = Path(__file__).resolve().parents[1] / "cards" / "rendered" / "vae-mnist.md"
    card = read_card(path)
    assert card.name == "vae-mnist" and card.zoo["results"]["nll"] > 0
    hub = ModelCard(path.read_text())
    metrics = {m.metric_type: m.metric_value for m in hub.data.eval_results}
    assert metrics["elbo"] == card.zoo["results"]["elbo"] and metrics["mutual_information"] > 0
    assert hub.data.library_name == "latent-zoo" and "latent-zoo" in hub.data.tags
    assert card.zoo["results"]["command"].startswith("zoo train vae-mnist")


def test_extends_merges_a_base_card(tmp_path):
    (tmp_path / "_base.md").write_text(GOOD.replace("latent: {shape: [2]}", "latent: {shape: [3]}"))
    (tmp_path / "child.md").write_text("""---
tags: [child]
zoo:
  extends: _base
  decoder: {hidden: [8]}
  prior: {name: mixture-of-gaussians, components: 3}
---
""")
    card = read_card(tmp_path / "child.md", name="child")
    assert card.latent_shape == (3,) and card.metadata == {"license": "mit", "tags": ["child"]}
    assert card.zoo["decoder"] == {"name": "mlp", "hidden": [8], "likelihood": "bernoulli"}   # merged
    assert card.zoo["prior"] == {"name": "mixture-of-gaussians", "components": 3}              # replaced
    assert card.body == "body\n" and "extends" not in card.zoo


def test_extends_refuses_cycles_and_missing_bases(tmp_path):
    (tmp_path / "a.md").write_text("---\nzoo: {extends: b}\n---\n")
    (tmp_path / "b.md").write_text("---\nzoo: {extends: a}\n---\n")
    with pytest.raises(CardError, match="cycle: a -> b -> a"):
        read_card(tmp_path / "a.md")
    (tmp_path / "c.md").write_text("---\nzoo: {extends: nowhere}\n---\n")
    with pytest.raises(CardError, match="c.md: field 'zoo.extends': no card 'nowhere'"):
        read_card(tmp_path / "c.md")


def test_the_256px_ddpm_cards_share_one_base():
    base = zoo.get_registry().cards["_ddpm-256"]
    assert "_ddpm-256" not in zoo.list_models()
    with pytest.raises(UnknownModelError):
        zoo.get_card("_ddpm-256")
    for name in zoo.list_models("ddpm-*-256"):
        card = zoo.get_card(name)
        assert card.zoo["prior"]["unet"] == "ddpm-256" and card.zoo["weights"]["repo"] == f"google/{name}"
        assert card.metadata["license"] == "apache-2.0" and base.path.read_text().count("ddpm-256") >= 1
        assert (card.path.read_text().count("\n") < 40)  # the variant holds only what differs

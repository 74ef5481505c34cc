"""The Stable Diffusion VAEs as zoo models: the offline proof that ``zoo.load`` of each card reproduces
diffusers' ``AutoencoderKL`` (posterior mean / log-variance and decoder output to 1e-5, through the
real huggingface_hub client against the local Hub server), the stated likelihood and its fit, and
what ``zoo diagnose`` reports for them.

The equivalence follows tests/test_ddpm.py: diffusers builds an ``AutoencoderKL`` with the card's
published configuration and seeded random weights, saves it in the diffusers layout, the local Hub
serves it, and a copy of the real card pinned to the served commit is loaded with ``zoo.load``.
The real configurations run on small images (the networks are fully convolutional).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import zoo
from diffusers_fixtures import local_card, perturb_norms, serve
from zoo.cards import parse_card
from zoo.errors import CardError, UnknownModelError, WeightsError
from zoo_plugins.autoencoders.convert import (
    CARD_CONFIGS,
    diffusers_autoencoder_kl_to_zoo,
    kl_args_from_diffusers,
)
from zoo_plugins.autoencoders.likelihoods import FixedScaleDiscretizedGaussian, FixedScaleDiscretizedLogistic

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")
SD_CARDS = sorted(CARD_CONFIGS)
LEGACY = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
TINY_CONFIG = {"block_out_channels": [32, 64], "down_block_types": ["DownEncoderBlock2D"] * 2,
               "up_block_types": ["UpDecoderBlock2D"] * 2, "latent_channels": 4, "layers_per_block": 1,
               "norm_num_groups": 8, "sample_size": 16}
TINY_ARGS = {"block_out_channels": [32, 64], "layers_per_block": 1, "norm_num_groups": 8}
TINY_CARD = """---
license: mit
zoo:
  data: {source: data/x, shape: [3, 16, 16]}
  latent: {shape: [4, 8, 8]}
  encoder: {name: autoencoder-kl, block_out_channels: [32, 64], layers_per_block: 1, norm_num_groups: 8, scaling_factor: SCALE}
  decoder: {name: autoencoder-kl, block_out_channels: [32, 64], layers_per_block: 1, norm_num_groups: 8, scaling_factor: SCALE, likelihood: LIKELIHOOD}
  prior: {name: standard-normal}
---
"""


def tiny(scale=1.0, likelihood="{name: fixed-discretized-gaussian, scale: 0.1}"):
    from zoo.assemble import build_model

    text = TINY_CARD.replace("SCALE", str(scale)).replace("LIKELIHOOD", likelihood)
    return build_model(parse_card(text, name="kl-tiny"))


def images(n, size=16, seed=0):
    return (torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 255).to(torch.uint8)


def _reference(config, seed=1234):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    net = AutoencoderKL(**{k: v for k, v in config.items() if not k.startswith("_")}).eval()
    perturb_norms(net, seed)
    return net


def _diffusers_folder(tmp_path: Path, net, config, style: str) -> Path:
    folder = tmp_path / f"upload-{style}"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL", **config}))
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    if style == "safetensors":
        from safetensors.torch import save_file

        save_file(state, folder / "diffusion_pytorch_model.safetensors")
    else:  # an old upload: legacy attention names, only a .bin
        legacy = {}
        for key, value in state.items():
            for new, old in LEGACY.items():
                key = key.replace(f".{new}.", f".{old}.")
            legacy[key] = value
        assert any(".query." in k for k in legacy)
        torch.save(legacy, folder / "diffusion_pytorch_model.bin")
    return folder


def _differences(model, net, size, dtype):
    """max |ours - diffusers'| of the posterior mean, log-variance and decoder output, computed in ``dtype``."""
    model.to(dtype), net.to(dtype)
    x = (torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(7)) * 2 - 1).to(dtype)
    with torch.no_grad():
        ref = net.encode(x).latent_dist
        q = model.encoder(x)
        z = ref.sample(generator=torch.Generator().manual_seed(3)).contiguous()   # (diffusers keeps its layout)
        out = [float((q.mean - ref.mean).abs().max()),
               float((2 * q.log_scale - ref.logvar).abs().max()),      # log sigma^2, clamped to [-30, 20]
               float((model.decoder(z).params - net.decode(z).sample).abs().max())]
    model.float(), net.float()
    return out


def _check_equal(model, net, size, *, exact_float32: bool):
    """Equal to 1e-5 as functions (computed in float64, where rounding is ~1e-13); in float32 the card's fast
    path (channels-last from the input on, phase-decomposed upsampling) rounds differently from diffusers, so
    float32 agrees to 1e-4 there, and bit for bit (< 1e-6) with ``channels_last`` / ``fast_upsample`` off."""
    assert max(_differences(model, net, size, torch.float64)) < 1e-5
    assert max(_differences(model, net, size, torch.float32)) < (1e-6 if exact_float32 else 1e-4)


# -- the cards ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SD_CARDS)
def test_sd_vae_cards_are_their_published_configs(name):
    card = zoo.get_card(name)
    enc, dec, channels = kl_args_from_diffusers(CARD_CONFIGS[name])
    for kind, want in (("encoder", enc), ("decoder", dec)):
        _, args = card.component(kind)
        assert {k: args.get(k, v if k in ("mid_attention", "use_quant_conv", "use_post_quant_conv") else None)
                for k, v in want.items()} == want, kind
        assert args["scaling_factor"] == 1.0         # the autoencoder's own latent (the card explains)
        assert args["channels_last"] is True and args.get("fast_upsample", kind == "decoder") is (kind == "decoder")
    assert card.latent_shape == (channels, card.data_shape[1] // 8, card.data_shape[2] // 8)
    assert card.zoo["weights"]["converter"] == "diffusers-autoencoder-kl"
    assert card.metadata["license"] == "mit" and card.zoo["prior"] == {"name": "standard-normal"}
    model = zoo.load(name, pretrained=False)
    assert sum(p.numel() for p in model.parameters()) == 83_653_863    # diffusers' AutoencoderKL at this config


def test_upstream_repo_ids_name_their_cards():
    from zoo.loading import card_for_repo

    assert card_for_repo("stabilityai/sd-vae-ft-mse") == "sd-vae-ft-mse"
    assert card_for_repo("madebyollin/sdxl-vae-fp16-fix") == "sdxl-vae-fp16-fix"
    assert card_for_repo("CompVis/ldm-celebahq-256") == "ldm-celebahq-256"
    assert card_for_repo("someone/not-a-card") is None
    model = zoo.load("stabilityai/sdxl-vae", pretrained=False)
    assert model.name == "sdxl-vae"


def test_a_repo_named_by_two_cards_is_refused(tmp_path, fresh_registry):
    local_card(tmp_path, "sd-vae-ft-mse", "sd-vae-copy", commit="0" * 40)
    from zoo.loading import card_for_repo

    with pytest.raises(UnknownModelError, match=r"several models \(sd-vae-copy, sd-vae-ft-mse\)"):
        card_for_repo("stabilityai/sd-vae-ft-mse")


# -- equivalence with diffusers through the local Hub ----------------------------------------------------------
@pytest.mark.parametrize("style", ["safetensors", "legacy-bin"])
def test_zoo_load_tiny_autoencoder_kl_equals_diffusers(local_hub, fresh_registry, tmp_path, style):
    """The code path of the cards with a tiny config; resolved from its repo id like the real ones."""
    pytest.importorskip("diffusers")
    net = _reference(TINY_CONFIG)
    commit = serve(local_hub, "zoo-test/tiny-kl", _diffusers_folder(tmp_path, net, TINY_CONFIG, style))
    exact = {"channels_last": False, "fast_upsample": False}   # diffusers' own layout and upsampling
    local_card(tmp_path, "sd-vae-ft-mse", "kl-tiny-local", commit=commit, repo="zoo-test/tiny-kl",
               zoo={"data": {"shape": [3, 16, 16]}, "latent": {"shape": [4, 8, 8]},
                    "encoder": {**TINY_ARGS, "channels_last": False}, "decoder": {**TINY_ARGS, **exact}})
    model = zoo.load("zoo-test/tiny-kl")            # the upstream repo id -> the card that names it
    assert model.name == "kl-tiny-local" and model.info["revision"] == commit
    assert model.info["weights"].endswith(".safetensors" if style == "safetensors" else ".bin")
    _check_equal(model, net, 16, exact_float32=True)
    terms = model.elbo(images(2))
    assert torch.isfinite(terms.elbo).all() and (terms.distortion > 0).all()


@pytest.mark.parametrize("name", SD_CARDS)
def test_zoo_load_sd_vae_card_equals_diffusers(local_hub, fresh_registry, tmp_path, name):
    """Each card's real configuration and random weights in diffusers' layout, on 32x32 images."""
    pytest.importorskip("diffusers")
    config = CARD_CONFIGS[name]
    net = _reference(config, seed=SD_CARDS.index(name))
    repo = zoo.get_card(name).zoo["weights"]["repo"]
    commit = serve(local_hub, repo, _diffusers_folder(tmp_path, net, config, "safetensors"))
    local = local_card(tmp_path, name, f"{name}-local", commit=commit,
                       zoo={"data": {"shape": [3, 32, 32]}, "latent": {"shape": [4, 4, 4]}})
    model = zoo.load(local)
    assert model.info["converter"] == "diffusers-autoencoder-kl" and model.info["revision"] == commit
    assert model.encoder.cfg.channels_last and model.decoder.cfg.fast_upsample      # the cards' fast path
    _check_equal(model, net, 32, exact_float32=False)


# -- the model ------------------------------------------------------------------------------------------------
def test_scaling_factor_rescales_the_latent_only():
    a, b = tiny(1.0), tiny(0.25)
    b.load_state_dict(a.state_dict())
    x = a.prepare(images(2))
    with torch.no_grad():
        qa, qb = a.encoder(x), b.encoder(x)
        assert torch.allclose(qb.mean, 0.25 * qa.mean) and torch.allclose(qb.log_scale, qa.log_scale + math.log(0.25))
        assert torch.allclose(b.decoder(qb.mean).params, a.decoder(qa.mean).params, atol=1e-6)


def test_bad_shapes_and_likelihoods_name_the_field():
    with pytest.raises(CardError, match=r"zoo\.encoder.*latents of shape \[4, 8, 8\].*latent\.shape is \[4, 4, 4\]"):
        from zoo.assemble import build_model

        build_model(parse_card(TINY_CARD.replace("[4, 8, 8]", "[4, 4, 4]").replace("SCALE", "1.0")
                               .replace("LIKELIHOOD", "fixed-discretized-gaussian"), name="x"))
    with pytest.raises(CardError, match=r"zoo\.decoder.*one parameter per dimension.*discretized-logistic.*2"):
        tiny(likelihood="discretized-logistic")
    with pytest.raises(CardError, match=r"scale must be a number in"):
        tiny(likelihood="{name: fixed-discretized-gaussian, scale: 0}")


def test_converter_names_unexpected_and_missing_keys():
    sd = _reference(TINY_CONFIG).state_dict()
    bad = {**sd, "encoder.mid_block.attentions.0.rotary.weight": torch.zeros(1), "extra.weight": torch.zeros(1)}
    with pytest.raises(WeightsError, match=r"unexpected keys: .*extra\.weight.*encoder\.mid_block\.attentions\.0\.rotary"):
        diffusers_autoencoder_kl_to_zoo(bad)
    partial = {k: v for k, v in sd.items() if k != "decoder.mid_block.attentions.0.to_k.weight"}
    with pytest.raises(WeightsError, match=r"missing attention keys: decoder\.mid_block\.attentions\.0\.to_k\.weight"):
        diffusers_autoencoder_kl_to_zoo(partial)
    with pytest.raises(ValueError, match=r"norm_type='spatial'"):
        kl_args_from_diffusers({**TINY_CONFIG, "norm_type": "spatial"})


# -- the stated likelihood ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [FixedScaleDiscretizedGaussian, FixedScaleDiscretizedLogistic])
def test_fixed_scale_likelihoods_are_probability_masses_on_8bit_data(cls):
    levels = torch.arange(256, dtype=torch.float64) / 127.5 - 1          # every value x can take
    for mu, s in ((0.0, 0.05), (0.93, 0.01), (-1.3, 0.2), (0.4, 0.002)):
        lik = cls(scale=s)
        mass = lik.log_prob_elementwise(torch.full_like(levels, mu), levels).exp()
        assert abs(float(mass.sum()) - 1) < 1e-6, (mu, s)
        assert lik.discrete and lik.params_per_dim == 1


def test_logistic_mass_is_stable_in_both_tails():
    lik = FixedScaleDiscretizedLogistic(scale=0.01)
    x = torch.tensor([-0.5, 0.0, 0.5, 0.9], dtype=torch.float64)
    for offset in (-0.3, -0.02, 0.0, 0.02, 0.3):
        mu = x + offset
        ours = lik.log_prob_elementwise(mu, x)
        p, m = (x - mu + 1 / 255) / 0.01, (x - mu - 1 / 255) / 0.01
        # the difference of two CDFs, taken on the side of the tail where it does not cancel (float64)
        exact = torch.log(torch.where(m > 0, torch.sigmoid(-m) - torch.sigmoid(-p), torch.sigmoid(p) - torch.sigmoid(m)))
        assert torch.isfinite(ours).all() and torch.allclose(ours, exact, rtol=1e-9), offset


def test_fit_recovers_the_noise_scale():
    """Images = a fixed clean image plus N(0, s^2) noise, rounded to 8 bits: the ML scale is s."""
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(16, 3, 32, 32, generator=g) * 1.6 - 0.8
    for true in (0.02, 0.1):
        noisy = (clean + true * torch.randn(clean.shape, generator=g)).clamp(-1, 1)
        data = torch.round((noisy + 1) * 127.5).to(torch.uint8)
        stub = SimpleNamespace(prepare=lambda x: x.float() / 127.5 - 1,
                               posterior=lambda x: SimpleNamespace(rsample=lambda: None),
                               decoder=None)
        means = iter(clean.split(8))
        stub.decoder = lambda z: SimpleNamespace(params=next(means))
        lik = FixedScaleDiscretizedGaussian(scale=0.5)
        out = lik.fit(stub, data)
        assert abs(out["scale"] / true - 1) < 0.03 and lik.scale == out["scale"]
        assert out["distortion_after"] < out["distortion_before"] and out["n"] == 16
        assert "maximum likelihood on 16 held-out images" in lik.describe()["fitted"]


def test_diagnose_fits_the_scale_on_held_out_images_and_reports_channels():
    model = tiny()
    data = images(8)
    report = zoo.diagnose(model, data, iwae_k=0)
    assert report["n_fit"] == 2 and report["n"] == 6                 # a quarter fit, the rest evaluated
    params, fit = report["likelihood_params"], report["likelihood_fit"]
    assert params["scale"] == fit["scale"] == model.decoder.likelihood.scale != 0.1
    assert params["family"] == "discretized Gaussian" and "held-out" in params["fitted"]
    # the fitted scale maximises the held-out distortion term: nudging it either way costs nats
    lik = model.decoder.likelihood
    with torch.no_grad():
        x = model.prepare(data[:2])
        torch.manual_seed(0)
        mu = model.decoder(model.posterior(x).rsample()).params
        best = float(lik.log_mass(mu, x, math.log(lik.scale)).sum())
        for factor in (0.9, 1.1):
            assert float(lik.log_mass(mu, x, math.log(lik.scale * factor)).sum()) < best
    # KL per channel sums the per-dimension KL (closed form against N(0, I)) to the rate
    assert len(report["kl_per_channel"]) == 4 and sum(report["kl_per_channel"]) == pytest.approx(report["rate"])
    assert len(report["active_units_per_channel"]) == 4 and 0 <= report["active_channels"] <= 4
    assert sum(report["active_units_per_channel"]) == report["active_units"]
    assert report["mutual_information"] + report["marginal_kl"] == pytest.approx(report["rate"], rel=1e-4)
    # every pointwise term log q(z|x_n) - log q(z) is <= log N, so the estimate is too (a 256-dim latent:
    # estimated as -log q(z) minus the closed-form entropy, MC noise alone would often exceed it)
    assert 0 <= report["mutual_information"] <= math.log(6)
    text = zoo.format_report(report)
    assert "likelihood parameters: family discretized Gaussian, scale" in text and "fitted on 2 images" in text
    assert "KL per latent channel" in text and "active channels" in text
    kept = zoo.diagnose(tiny(), data, iwae_k=0, fit_points=0)
    assert kept["n"] == 8 and kept["likelihood_params"]["scale"] == 0.1 and kept["likelihood_fit"] is None
    with pytest.raises(ValueError, match="fit_points"):
        zoo.diagnose(tiny(), data, iwae_k=0, fit_points=8)
    json.dumps(report)


def test_cli_diagnose_on_an_image_folder(tmp_path, capsys):
    from PIL import Image

    from zoo.cli import main
    from zoo.store.run_folder import save_model

    folder = tmp_path / "images" / "test"
    folder.mkdir(parents=True)
    for i, img in enumerate(images(5)):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    card = parse_card(TINY_CARD.replace("SCALE", "1.0").replace("LIKELIHOOD", "{name: fixed-discretized-gaussian, "
                                                                              "scale: 0.1}"), name="kl-tiny")
    save_model(tiny(), tmp_path / "run", card)
    assert main(["diagnose", str(tmp_path / "run"), "--data", str(tmp_path / "images"), "--k", "0",
                 "--fit-points", "1"]) == 0
    out = capsys.readouterr().out
    assert "N=4" in out and "fitted on 1 images" in out and "KL per latent channel" in out
    assert main(["diagnose", str(tmp_path / "run"), "--data", str(tmp_path / "images"), "--k", "0",
                 "--fit-points", "5"]) == 2
    assert "--fit-points" in capsys.readouterr().err

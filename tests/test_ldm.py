"""A pretrained latent diffusion model composed from zoo parts (``ldm-celebahq-256``): VQ encoder / decoder
plugins and the ``ddpm`` prior over the latent grid, the two upstream files converted on load.

Offline proof: diffusers' ``VQModel`` + ``UNet2DModel`` with random weights in the diffusers layout
(``vqvae/``, ``unet/``, ``scheduler/``) are served by the local Hub server; ``zoo.load`` of a copy of
the real card then samples with DDIM from fixed noise exactly as diffusers' ``LDMPipeline`` does
(1e-4), and the UNet's epsilon equals diffusers' (1e-5; at the real 274M-parameter configuration too).
The per-commit tests use a tiny configuration (same code path); the real-size pipeline is ``-m slow``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import zoo
from diffusers_fixtures import local_card, perturb_norms, serve
from zoo.errors import WeightsError
from zoo_plugins.autoencoders.convert import (
    LDM_CELEBAHQ_SCHEDULER_CONFIG,
    LDM_CELEBAHQ_UNET_CONFIG,
    LDM_CELEBAHQ_VQVAE_CONFIG,
    diffusers_ldm_to_zoo,
    vq_args_from_diffusers,
)

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")
REPO = "CompVis/ldm-celebahq-256"
TINY_VQ = {"block_out_channels": [32, 64], "down_block_types": ["DownEncoderBlock2D"] * 2,
           "up_block_types": ["UpDecoderBlock2D"] * 2, "latent_channels": 3, "layers_per_block": 1,
           "norm_num_groups": 8, "num_vq_embeddings": 32, "sample_size": 16}
TINY_UNET = {"sample_size": 8, "in_channels": 3, "out_channels": 3, "block_out_channels": [32, 64],
             "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
             "layers_per_block": 1, "attention_head_dim": 8, "norm_num_groups": 8, "flip_sin_to_cos": True,
             "freq_shift": 0, "downsample_padding": 1, "norm_eps": 1e-5}
TINY_ZOO = {"data": {"shape": [3, 16, 16]}, "latent": {"shape": [3, 8, 8]},
            "encoder": {"block_out_channels": [32, 64], "layers_per_block": 1, "norm_num_groups": 8},
            "decoder": {"block_out_channels": [32, 64], "layers_per_block": 1, "norm_num_groups": 8,
                        "num_vq_embeddings": 32},
            "prior": {"unet": {"channels": 32, "channel_mult": [1, 2], "num_res_blocks": 1, "attention_resolutions": [4],
                               "attention_head_dim": 8, "norm_groups": 8, "norm_eps": 0.00001, "flip_sin_to_cos": True,
                               "freq_shift": 0, "downsample_padding": 1}}}


def _parts(vq_config, unet_config, seed=0):
    from diffusers import UNet2DModel, VQModel

    torch.manual_seed(seed)
    vqvae = VQModel(**{k: v for k, v in vq_config.items() if not k.startswith("_")}).eval()
    unet = UNet2DModel(**{k: v for k, v in unet_config.items() if not k.startswith("_")}).eval()
    perturb_norms(vqvae, seed)
    perturb_norms(unet, seed + 1)
    with torch.no_grad():  # a codebook spread like trained latents, so that quantisation picks distinct codes
        vqvae.quantize.embedding.weight.normal_(0, 1, generator=torch.Generator().manual_seed(seed))
    return vqvae, unet


def _diffusers_folder(tmp_path: Path, vqvae, unet, vq_config, unet_config, style="safetensors") -> Path:
    folder = tmp_path / "ldm-upload"
    for part, net, config in (("vqvae", vqvae, vq_config), ("unet", unet, unet_config)):
        (folder / part).mkdir(parents=True)
        (folder / part / "config.json").write_text(json.dumps(config))
        state = {k: v.contiguous() for k, v in net.state_dict().items()}
        if style == "safetensors":
            from safetensors.torch import save_file

            save_file(state, folder / part / "diffusion_pytorch_model.safetensors")
        else:
            torch.save(state, folder / part / "diffusion_pytorch_model.bin")
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(LDM_CELEBAHQ_SCHEDULER_CONFIG))
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "LDMPipeline", "scheduler": ["diffusers",
                                                         "DDIMScheduler"], "unet": ["diffusers", "UNet2DModel"],
                                                         "vqvae": ["diffusers", "VQModel"]}))
    return folder


def _pipeline(folder: Path, scaling_factor: float | None):
    from diffusers import LDMPipeline

    pipe = LDMPipeline.from_pretrained(str(folder))
    pipe.set_progress_bar_config(disable=True)
    if scaling_factor is not None:      # the field the repository's vqvae/config.json lacks
        pipe.vqvae.register_to_config(scaling_factor=scaling_factor)
    return pipe


def _compare_sampling(model, pipe, n, steps, eta, seed=11):
    ours = model.sample(n, sampler="ddim", steps=steps, eta=eta, generator=torch.Generator().manual_seed(seed))
    theirs = pipe(batch_size=n, generator=torch.Generator().manual_seed(seed), eta=eta, num_inference_steps=steps,
                  output_type="np").images
    theirs = torch.from_numpy(theirs).permute(0, 3, 1, 2)
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max() < 1e-4
    return ours


# -- the card is the published configuration ------------------------------------------------------------------
def test_ldm_card_is_its_published_configs():
    from zoo_plugins.diffusion.convert import config_from_diffusers

    card = zoo.get_card("ldm-celebahq-256")
    enc, dec, channels = vq_args_from_diffusers(LDM_CELEBAHQ_VQVAE_CONFIG)
    _, enc_args = card.component("encoder")
    _, dec_args = card.component("decoder")
    assert {k: enc_args.get(k, True) for k in enc} == enc and {k: dec_args.get(k, True) for k in dec} == dec
    assert enc_args["scaling_factor"] == dec_args["scaling_factor"] == 1.0       # the model as trained (card)
    assert card.latent_shape == (channels, 64, 64)
    from zoo.assemble import build_model

    model = build_model(card, empty=True)  # the shapes are what is checked here: no weights allocated
    assert model.prior.unet.config == config_from_diffusers(LDM_CELEBAHQ_UNET_CONFIG)
    schedule = LDM_CELEBAHQ_SCHEDULER_CONFIG
    from diffusers import DDIMScheduler

    reference = DDIMScheduler(**{k: v for k, v in schedule.items() if not k.startswith("_")})
    assert torch.allclose(model.prior.schedule.alphas_cumprod.float(), reference.alphas_cumprod, rtol=1e-5)
    assert model.prior.clip_sample is False and model.config["sampler"] == {"name": "ddim", "steps": 50, "eta": 0.0}
    assert sum(p.numel() for p in model.prior.parameters()) == 274_056_163
    assert sum(p.numel() for p in model.encoder.parameters()) + sum(p.numel() for p in model.decoder.parameters()) \
        == 55_322_782
    assert card.zoo["weights"]["file"] == {"vqvae": "vqvae/diffusion_pytorch_model.safetensors",
                                           "unet": "unet/diffusion_pytorch_model.safetensors"}


# -- zoo.load + DDIM = LDMPipeline, offline ----------------------------------------------------------------------
@pytest.mark.parametrize("scaling_factor", [1.0, 0.18215])
def test_zoo_load_tiny_ldm_samples_as_ldm_pipeline(local_hub, fresh_registry, tmp_path, scaling_factor):
    """1.0: the card's model (the pipeline given the missing scaling_factor); 0.18215: the pipeline as it runs
    on the repository's config today (diffusers' default), reproduced by setting the card's factors."""
    pytest.importorskip("diffusers")
    vq_config = {"_class_name": "VQModel", **TINY_VQ}
    unet_config = {"_class_name": "UNet2DModel", **TINY_UNET}
    vqvae, unet = _parts(vq_config, unet_config)
    folder = _diffusers_folder(tmp_path, vqvae, unet, vq_config, unet_config)
    commit = serve(local_hub, REPO, folder)
    zoo_block = {**TINY_ZOO, "encoder": {**TINY_ZOO["encoder"], "scaling_factor": scaling_factor},
                 "decoder": {**TINY_ZOO["decoder"], "scaling_factor": scaling_factor}}
    name = local_card(tmp_path, "ldm-celebahq-256", "ldm-tiny-local", commit=commit, zoo=zoo_block)
    model = zoo.load(name)
    assert model.info["revision"] == commit and model.info["converter"] == "diffusers-ldm"
    assert set(model.info["weights"]) == {"vqvae", "unet"}
    pipe = _pipeline(folder, None if scaling_factor == 0.18215 else scaling_factor)
    assert pipe.vqvae.config.scaling_factor == scaling_factor
    images = _compare_sampling(model, pipe, n=2, steps=5, eta=0.0)
    assert images.min() >= 0 and images.max() <= 1 and images.std() > 0.01
    # the stochastic DDIM (eta > 0): LDMPipeline draws its step noise from the global RNG, not the generator,
    # so compare with its scheduler stepping on the same generator instead
    with torch.no_grad():
        g = torch.Generator().manual_seed(4)
        latents = torch.randn((2, 3, 8, 8), generator=g)
        pipe.scheduler.set_timesteps(4)
        for t in pipe.scheduler.timesteps:
            latents = pipe.scheduler.step(unet(latents, t).sample, t, latents, eta=1.0, generator=g).prev_sample
        ours = model.sample(2, sampler="ddim", steps=4, eta=1.0, generator=torch.Generator().manual_seed(4))
        theirs = (vqvae.decode(latents / scaling_factor).sample / 2 + 0.5).clamp(0, 1)
        assert (ours - theirs).abs().max() < 1e-4
    # the card's default sampler is DDIM-50, eta 0: model.sample(n) is that
    default = model.sample(1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(default, model.sample(1, sampler="ddim", steps=50, eta=0.0,
                                             generator=torch.Generator().manual_seed(3)))
    # eps, the encoder's latents and the decoder, one by one
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    t = torch.tensor([0, 731])
    img = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(6)) * 2 - 1
    with torch.no_grad():
        assert (model.prior.eps(x, t) - unet(x, t).sample).abs().max() < 1e-5
        h = vqvae.encode(img).latents
        assert (model.encoder.latents(img) - h).abs().max() < 1e-5
        assert torch.allclose(model.encoder(img).mean, scaling_factor * model.encoder.latents(img))
        assert (model.decoder(h * scaling_factor).params - vqvae.decode(h).sample).abs().max() < 1e-5


def test_ldm_bound_and_diagnose_on_the_tiny_model(local_hub, fresh_registry, tmp_path):
    """The LDM is a latent-variable model like the others: a finite ELBO and a diagnose report."""
    pytest.importorskip("diffusers")
    vq_config = {"_class_name": "VQModel", **TINY_VQ}
    unet_config = {"_class_name": "UNet2DModel", **TINY_UNET}
    vqvae, unet = _parts(vq_config, unet_config, seed=3)
    commit = serve(local_hub, REPO, _diffusers_folder(tmp_path, vqvae, unet, vq_config, unet_config, style="bin"))
    model = zoo.load(local_card(tmp_path, "ldm-celebahq-256", "ldm-tiny-bin", commit=commit,
                                zoo={**TINY_ZOO, "prior": {**TINY_ZOO["prior"], "eval_timesteps": 4}}))
    assert all(path.endswith(".bin") for path in model.info["weights"].values())   # the .safetensors fall back
    data = (torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    terms = model.elbo(data)
    assert torch.isfinite(terms.elbo).all() and (terms.distortion > 0).all()
    report = zoo.diagnose(model, data, iwae_k=10)
    assert report["n"] == 6 and report["n_fit"] == 2 and report["likelihood_params"]["scale"] > 0
    assert report["iwae_k"] == 0 and len(report["L_t"]) == 1000 and len(report["active_units_per_channel"]) == 3
    assert "kl_per_channel" not in report          # no closed-form KL per dimension under a diffusion prior
    assert "upper bound" in report["mi_estimator"]


def test_ldm_converter_needs_both_files():
    vqvae, unet = _parts({"_class_name": "VQModel", **TINY_VQ}, {"_class_name": "UNet2DModel", **TINY_UNET})
    state = {f"vqvae.{k}": v for k, v in vqvae.state_dict().items()}
    with pytest.raises(WeightsError, match=r"no tensors from its 'unet' file"):
        diffusers_ldm_to_zoo(state)
    with pytest.raises(WeightsError, match=r"keys conv_in\.weight belong to neither file"):
        diffusers_ldm_to_zoo({**state, "conv_in.weight": torch.zeros(1)})


def test_real_ldm_unet_eps_equals_diffusers():
    """The card's 274M-parameter UNet (its published config) against diffusers' UNet2DModel, random weights."""
    pytest.importorskip("diffusers")
    from diffusers import UNet2DModel

    from zoo.assemble import build_model
    from zoo_plugins.diffusion.convert import ZOO_PREFIX, diffusers_unet_to_zoo

    torch.manual_seed(0)
    reference = UNet2DModel(**{k: v for k, v in LDM_CELEBAHQ_UNET_CONFIG.items() if not k.startswith("_")}).eval()
    perturb_norms(reference, 0)
    model = build_model(zoo.get_card("ldm-celebahq-256"), empty=True)   # every UNet weight is loaded next
    model.prior.unet.load_state_dict(diffusers_unet_to_zoo(reference.state_dict()), assign=True)
    assert all(k.startswith(ZOO_PREFIX) for k in diffusers_ldm_to_zoo(
        {**{f"unet.{k}": v for k, v in reference.state_dict().items()},
         **{f"vqvae.{k}": v for k, v in _parts({"_class_name": "VQModel", **TINY_VQ},
                                                {"_class_name": "UNet2DModel", **TINY_UNET})[0]
            .state_dict().items()}}) if k.startswith("prior."))
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (model.prior.eps(x, torch.tensor([731])) - reference(x, 731).sample).abs().max() < 1e-5


@pytest.mark.slow
def test_zoo_load_real_ldm_celebahq_samples_as_ldm_pipeline(local_hub, fresh_registry, tmp_path):
    """The real configuration end to end (a 1.3 GB upload, 256px decoding): pytest -m slow tests/test_ldm.py."""
    pytest.importorskip("diffusers")
    vqvae, unet = _parts(LDM_CELEBAHQ_VQVAE_CONFIG, LDM_CELEBAHQ_UNET_CONFIG)
    folder = _diffusers_folder(tmp_path, vqvae, unet, LDM_CELEBAHQ_VQVAE_CONFIG, LDM_CELEBAHQ_UNET_CONFIG)
    commit = serve(local_hub, REPO, folder)
    model = zoo.load(local_card(tmp_path, "ldm-celebahq-256", "ldm-real-local", commit=commit))
    _compare_sampling(model, _pipeline(folder, 1.0), n=1, steps=3, eta=0.0)

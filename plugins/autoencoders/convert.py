"""Load diffusers' ``AutoencoderKL`` / ``VQModel`` checkpoints (and the LDM pipeline's two parts) into
the zoo's autoencoder plugins.  Registered converters (card ``zoo.weights.converter``):

    diffusers-autoencoder-kl   AutoencoderKL state dict -> encoder ``autoencoder-kl`` + decoder ``autoencoder-kl``
    diffusers-vqmodel          VQModel state dict       -> encoder ``vqmodel`` + decoder ``vqmodel``
    diffusers-ldm              {vqvae.<VQModel key>, unet.<UNet2DModel key>} (the card's two files)
                               -> encoder/decoder ``vqmodel`` + prior ``ddpm`` (the UNet through the
                               ``diffusers-unet`` mapping of :mod:`zoo_plugins.diffusion.convert`)

Name mapping inside ``encoder.`` / ``decoder.`` (diffusers -> ours, under ``encoder.net.`` /
``decoder.net.``; ``{i}``, ``{j}`` block / layer indices, both sides keep diffusers' order):

    conv_in, conv_norm_out, conv_out          -> conv_in, norm_out, conv_out
    {down,up}_blocks.{i}.resnets.{j}.X        -> {down,up}.{i}.res.{j}.Y   (norm1, conv1, norm2, conv2;
                                                 conv_shortcut -> skip)
    down_blocks.{i}.downsamplers.0.conv       -> down.{i}.downsample.conv
    up_blocks.{i}.upsamplers.0.conv           -> up.{i}.upsample.conv
    mid_block.resnets.{0,1}.X                 -> mid.res{1,2}.Y
    mid_block.attentions.0.group_norm         -> mid.attn.norm
    mid_block.attentions.0.to_q/to_k/to_v     -> mid.attn.qkv (rows concatenated q, k, v)
        (or the legacy query/key/value of older uploads, e.g. the SD VAEs' own files)
    mid_block.attentions.0.to_out.0 (proj_attn) -> mid.attn.proj

and at the top: ``quant_conv`` -> ``encoder.quant_conv``, ``post_quant_conv`` ->
``decoder.post_quant_conv``, ``quantize.embedding.weight`` -> ``decoder.quantize.embedding.weight``.
Attention weights stored as 1x1 convolutions ([C, C, 1, 1], the original LDM layout) are reshaped
to [C, C].  Unknown or missing keys raise :class:`WeightsError` naming the first ones.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import torch
from torch import Tensor

from zoo.errors import WeightsError

from zoo_plugins.diffusion.convert import ZOO_PREFIX, diffusers_unet_to_zoo

__all__ = ["coder_to_zoo", "diffusers_autoencoder_kl_to_zoo", "diffusers_vqmodel_to_zoo", "diffusers_ldm_to_zoo",
           "kl_args_from_diffusers", "vq_args_from_diffusers",
           "SD_VAE_CONFIG", "SDXL_VAE_CONFIG", "SDXL_VAE_FP16_FIX_CONFIG", "CARD_CONFIGS",
           "LDM_CELEBAHQ_VQVAE_CONFIG", "LDM_CELEBAHQ_UNET_CONFIG", "LDM_CELEBAHQ_SCHEDULER_CONFIG"]

_SHOW = 8
_RES = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "conv_shortcut": "skip"}
_QKV = {"to_q": 0, "query": 0, "to_k": 1, "key": 1, "to_v": 2, "value": 2}
_PROJ = ("to_out.0", "proj_attn")
_RES_RE = re.compile(r"^(down|up)_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.(weight|bias)$")
_MID_RES_RE = re.compile(r"^mid_block\.resnets\.([01])\.(\w+)\.(weight|bias)$")
_ATTN_RE = re.compile(r"^mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|query|key|value|to_out\.0|proj_attn)"
                      r"\.(weight|bias)$")
_SAMPLER_RE = re.compile(r"^(down|up)_blocks\.(\d+)\.(downsamplers|upsamplers)\.0\.conv\.(weight|bias)$")
_TOP = {"conv_in": "conv_in", "conv_norm_out": "norm_out", "conv_out": "conv_out"}

# The published configurations (diffusers config.json), as the tests and benchmarks build
# diffusers' reference models from them; where each was read is stated in its card.
SD_VAE_CONFIG: dict[str, Any] = {   # stabilityai/sd-vae-ft-mse and sd-vae-ft-ema (no scaling_factor field)
    "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2,
    "norm_num_groups": 32, "sample_size": 256,
}
SDXL_VAE_CONFIG: dict[str, Any] = {**SD_VAE_CONFIG, "sample_size": 1024, "scaling_factor": 0.13025,
                                   "force_upcast": True}   # stabilityai/sdxl-vae
SDXL_VAE_FP16_FIX_CONFIG: dict[str, Any] = {**SD_VAE_CONFIG, "sample_size": 512, "scaling_factor": 0.13025,
                                            "force_upcast": False}   # madebyollin/sdxl-vae-fp16-fix
# card name -> the published config of its upstream repository
CARD_CONFIGS: dict[str, dict[str, Any]] = {"sd-vae-ft-mse": SD_VAE_CONFIG, "sd-vae-ft-ema": SD_VAE_CONFIG,
                                           "sdxl-vae": SDXL_VAE_CONFIG, "sdxl-vae-fp16-fix": SDXL_VAE_FP16_FIX_CONFIG}
LDM_CELEBAHQ_VQVAE_CONFIG: dict[str, Any] = {   # CompVis/ldm-celebahq-256 vqvae/config.json
    "_class_name": "VQModel", "_diffusers_version": "0.1.2", "act_fn": "silu", "block_out_channels": [128, 256, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 3, "in_channels": 3, "latent_channels": 3, "layers_per_block": 2,
    "num_vq_embeddings": 8192, "out_channels": 3, "sample_size": 256, "up_block_types": ["UpDecoderBlock2D"] * 3,
}
LDM_CELEBAHQ_UNET_CONFIG: dict[str, Any] = {   # CompVis/ldm-celebahq-256 unet/config.json
    "_class_name": "UNet2DModel", "_diffusers_version": "0.0.4", "act_fn": "silu", "attention_head_dim": 32,
    "block_out_channels": [224, 448, 672, 896], "center_input_sample": False,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 3, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 3, "sample_size": 64,
    "time_embedding_type": "positional",
    "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
}
LDM_CELEBAHQ_SCHEDULER_CONFIG: dict[str, Any] = {   # CompVis/ldm-celebahq-256 scheduler/scheduler_config.json
    "_class_name": "DDIMScheduler", "_diffusers_version": "0.0.4", "beta_end": 0.0195,
    "beta_schedule": "scaled_linear", "beta_start": 0.0015, "clip_sample": False, "num_train_timesteps": 1000,
    "trained_betas": None,
}


def _listing(keys: list[str]) -> str:
    return ", ".join(keys[:_SHOW]) + (f", ... ({len(keys)} in all)" if len(keys) > _SHOW else "")


def _as_linear(value: Tensor) -> Tensor:
    """A 1x1-conv attention weight [C, C, 1, 1] as the linear weight [C, C]."""
    return value[:, :, 0, 0] if value.dim() == 4 and value.shape[2:] == (1, 1) else value


def coder_to_zoo(state: Mapping[str, Tensor], what: str) -> tuple[dict[str, Tensor], list[str], list[str]]:
    """diffusers ``Encoder`` / ``Decoder`` keys (without the ``encoder.`` / ``decoder.`` prefix) -> ours.

    Returns (converted, unexpected keys, missing attention parts)."""
    out: dict[str, Tensor] = {}
    unexpected: list[str] = []
    qkv: dict[str, dict[int, Tensor]] = {}
    for key, value in state.items():
        if m := _RES_RE.match(key):
            side, i, j, layer, kind = m.groups()
            if layer in _RES:
                out[f"{side}.{i}.res.{j}.{_RES[layer]}.{kind}"] = value
                continue
        elif m := _MID_RES_RE.match(key):
            j, layer, kind = m.groups()
            if layer in _RES:
                out[f"mid.res{int(j) + 1}.{_RES[layer]}.{kind}"] = value
                continue
        elif m := _ATTN_RE.match(key):
            layer, kind = m.groups()
            if layer == "group_norm":
                out[f"mid.attn.norm.{kind}"] = value
            elif layer in _PROJ:
                out[f"mid.attn.proj.{kind}"] = _as_linear(value)
            else:
                part = qkv.setdefault(kind, {})
                if _QKV[layer] in part:
                    raise WeightsError(f"{what}: two keys for the same attention projection ({key})")
                part[_QKV[layer]] = _as_linear(value)
            continue
        elif m := _SAMPLER_RE.match(key):
            side, i, sampler, kind = m.groups()
            if (side, sampler) in (("down", "downsamplers"), ("up", "upsamplers")):
                out[f"{side}.{i}.{'downsample' if side == 'down' else 'upsample'}.conv.{kind}"] = value
                continue
        else:
            head, _, kind = key.rpartition(".")
            if head in _TOP and kind in ("weight", "bias"):
                out[f"{_TOP[head]}.{kind}"] = value
                continue
        unexpected.append(key)
    missing: list[str] = []
    for kind, part in qkv.items():
        absent = [n for n, idx in (("to_q", 0), ("to_k", 1), ("to_v", 2)) if idx not in part]
        if absent:
            missing.extend(f"{what}.mid_block.attentions.0.{n}.{kind} (or legacy name)" for n in absent)
        else:
            out[f"mid.attn.qkv.{kind}"] = torch.cat([part[0], part[1], part[2]], dim=0)
    return out, unexpected, missing


def _autoencoder_to_zoo(state: Mapping[str, Tensor], model: str, top: Mapping[str, str]) -> dict[str, Tensor]:
    if not state:
        raise WeightsError(f"cannot convert an empty {model} state dict (no tensors in the checkpoint)")
    out: dict[str, Tensor] = {}
    unexpected: list[str] = []
    missing: list[str] = []
    sides: dict[str, dict[str, Tensor]] = {"encoder": {}, "decoder": {}}
    for key, value in state.items():
        side, _, rest = key.partition(".")
        if side in sides and rest:
            sides[side][rest] = value
        elif key in top:
            out[top[key]] = value
        else:
            unexpected.append(key)
    for side, part in sides.items():
        converted, bad, absent = coder_to_zoo(part, side)
        out.update({f"{side}.net.{k}": v for k, v in converted.items()})
        unexpected.extend(f"{side}.{k}" for k in bad)
        missing.extend(absent)
    if unexpected or missing:
        msg = [f"cannot convert diffusers {model} state dict:"]
        if unexpected:
            msg.append(f"unexpected keys: {_listing(unexpected)}")
        if missing:
            msg.append(f"missing attention keys: {_listing(missing)}")
        raise WeightsError(" ".join(msg))
    return out


_KL_TOP = {"quant_conv.weight": "encoder.quant_conv.weight", "quant_conv.bias": "encoder.quant_conv.bias",
           "post_quant_conv.weight": "decoder.post_quant_conv.weight",
           "post_quant_conv.bias": "decoder.post_quant_conv.bias"}
_VQ_TOP = {**_KL_TOP, "quantize.embedding.weight": "decoder.quantize.embedding.weight"}


def diffusers_autoencoder_kl_to_zoo(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The converter ``diffusers-autoencoder-kl``: an ``AutoencoderKL`` state dict (either attention key
    style) -> a LatentModel with encoder and decoder ``autoencoder-kl`` (the prior has no weights)."""
    return _autoencoder_to_zoo(state, "AutoencoderKL", _KL_TOP)


def diffusers_vqmodel_to_zoo(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The converter ``diffusers-vqmodel``: a ``VQModel`` state dict -> encoder and decoder ``vqmodel``."""
    return _autoencoder_to_zoo(state, "VQModel", _VQ_TOP)


def diffusers_ldm_to_zoo(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The converter ``diffusers-ldm``: the card's two files read as one dict with keys ``vqvae.<VQModel key>``
    and ``unet.<UNet2DModel key>`` -> encoder/decoder ``vqmodel`` + prior ``ddpm`` (``prior.unet.``)."""
    parts: dict[str, dict[str, Tensor]] = {"vqvae": {}, "unet": {}}
    other = []
    for key, value in state.items():
        role, _, rest = key.partition(".")
        if role in parts and rest:
            parts[role][rest] = value
        else:
            other.append(key)
    if other:
        raise WeightsError(f"cannot convert a latent diffusion checkpoint: keys {_listing(other)} belong to neither "
                           f"file (the card's zoo.weights.file must name a 'vqvae' and a 'unet' file)")
    for role, part in parts.items():
        if not part:
            raise WeightsError(f"cannot convert a latent diffusion checkpoint: no tensors from its {role!r} file")
    out = diffusers_vqmodel_to_zoo(parts["vqvae"])
    out.update({ZOO_PREFIX + k: v for k, v in diffusers_unet_to_zoo(parts["unet"]).items()})
    return out


# --------------------------------------------------------------------------- config.json -> card arguments

_KNOWN = {"in_channels", "out_channels", "down_block_types", "up_block_types", "block_out_channels", "layers_per_block",
          "act_fn", "latent_channels", "norm_num_groups", "sample_size", "scaling_factor", "shift_factor",
          "latents_mean", "latents_std", "force_upcast", "use_quant_conv", "use_post_quant_conv",
          "mid_block_add_attention", "num_vq_embeddings", "vq_embed_dim", "norm_type", "lookup_from_codebook"}


def _common_args(config: Mapping[str, Any], model: str) -> dict[str, Any]:
    c = {k: v for k, v in config.items() if not k.startswith("_")}

    def bad(field: str, why: str) -> ValueError:
        return ValueError(f"unsupported diffusers {model} config: {field}={c.get(field)!r} ({why})")

    for field in c:
        if field not in _KNOWN:
            raise ValueError(f"unsupported diffusers {model} config field {field!r}")
    widths = list(c.get("block_out_channels", (64,)))
    if c.get("act_fn", "silu") not in ("silu", "swish"):
        raise bad("act_fn", "only silu")
    for field, block in (("down_block_types", "DownEncoderBlock2D"), ("up_block_types", "UpDecoderBlock2D")):
        types = list(c.get(field, (block,)))
        if types != [block] * len(widths):
            raise bad(field, f"one {block} per block_out_channels entry ({len(widths)})")
    if c.get("norm_type", "group") != "group":
        raise bad("norm_type", "only group normalisation")
    if c.get("shift_factor") is not None or c.get("latents_mean") is not None or c.get("latents_std") is not None:
        raise bad("shift_factor", "latent shift / per-channel statistics are not supported")
    if c.get("in_channels", 3) != c.get("out_channels", 3):
        raise bad("out_channels", "must equal in_channels (an image autoencoder)")
    return {"block_out_channels": widths, "layers_per_block": int(c.get("layers_per_block", 1)),
            "norm_num_groups": int(c.get("norm_num_groups", 32)),
            "mid_attention": bool(c.get("mid_block_add_attention", True))}


def kl_args_from_diffusers(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], int]:
    """An ``AutoencoderKL`` config.json -> (encoder args, decoder args, latent channels) for the
    ``autoencoder-kl`` components (``scaling_factor`` not included: the card chooses it)."""
    args = _common_args(config, "AutoencoderKL")
    enc = {**args, "use_quant_conv": bool(config.get("use_quant_conv", True))}
    dec = {**args, "use_post_quant_conv": bool(config.get("use_post_quant_conv", True))}
    return enc, dec, int(config.get("latent_channels", 4))


def vq_args_from_diffusers(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], int]:
    """A ``VQModel`` config.json -> (encoder args, decoder args, embedding dim = the latent's channels)."""
    args = _common_args(config, "VQModel")
    if config.get("lookup_from_codebook", False):
        raise ValueError("unsupported diffusers VQModel config: lookup_from_codebook=True (decoding code indices)")
    channels = int(config.get("latent_channels", 3))
    embed = config.get("vq_embed_dim")
    embed = channels if embed is None else int(embed)
    if channels != embed:
        args["latent_channels"] = channels
    dec = {**args, "num_vq_embeddings": int(config.get("num_vq_embeddings", 256))}
    return dict(args), dec, embed

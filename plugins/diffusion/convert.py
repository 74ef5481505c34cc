"""Load diffusers ``UNet2DModel`` checkpoints (the DDPM family) into :class:`.unet.UNet`.

Name mapping (diffusers -> ours); ``{i}``, ``{j}`` are block / layer indices, both sides keep
diffusers' up-block order (lowest resolution first):

    conv_in                                  -> conv_in
    time_embedding.linear_{1,2}              -> time_embed.fc{1,2}
    {down,up}_blocks.{i}.resnets.{j}.X       -> {down,up}.{i}.res.{j}.Y   (X -> Y below)
        norm1, conv1, norm2, conv2           -> same names
        time_emb_proj                        -> temb_proj
        conv_shortcut                        -> skip
    {down,up}_blocks.{i}.attentions.{j}.X    -> {down,up}.{i}.attn.{j}.Y
        group_norm                           -> norm
        to_q + to_k + to_v  (or legacy query + key + value) -> qkv  (rows concatenated q, k, v)
        to_out.0            (or legacy proj_attn)           -> proj
    down_blocks.{i}.downsamplers.0.conv      -> down.{i}.downsample.conv
    up_blocks.{i}.upsamplers.0.conv          -> up.{i}.upsample.conv
    mid_block.resnets.{0,1}                  -> mid.res{1,2}
    mid_block.attentions.0                   -> mid.attn
    conv_norm_out, conv_out                  -> norm_out, conv_out
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from zoo.errors import WeightsError

from .unet import UNetConfig

__all__ = [
    "diffusers_unet_to_zoo",
    "diffusers_ddpm_to_zoo",
    "config_from_diffusers",
    "load_diffusers_unet",
    "check_state_dict",
    "WeightsError",
]

_SHOW = 8  # how many offending keys an error message lists

_RES = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2",
        "time_emb_proj": "temb_proj", "conv_shortcut": "skip"}
_QKV = {"to_q": 0, "query": 0, "to_k": 1, "key": 1, "to_v": 2, "value": 2}
_PROJ = ("to_out.0", "proj_attn")

_RES_RE = re.compile(r"^(down|up)_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.(weight|bias)$")
_MID_RES_RE = re.compile(r"^mid_block\.resnets\.([01])\.(\w+)\.(weight|bias)$")
_ATTN_RE = re.compile(
    r"^(?:(down|up)_blocks\.(\d+)\.attentions\.(\d+)|mid_block\.attentions\.0)\."
    r"(group_norm|to_q|to_k|to_v|query|key|value|to_out\.0|proj_attn)\.(weight|bias)$"
)
_SAMPLER_RE = re.compile(r"^(down|up)_blocks\.(\d+)\.(downsamplers|upsamplers)\.0\.conv\.(weight|bias)$")
_TOP = {"conv_in": "conv_in", "time_embedding.linear_1": "time_embed.fc1",
        "time_embedding.linear_2": "time_embed.fc2", "conv_norm_out": "norm_out",
        "conv_out": "conv_out"}


# google/ddpm-cifar10-32's config.json as published (diffusers UNet2DModel): the tests and benchmarks
# build diffusers' reference model from it.
DDPM_CIFAR10_DIFFUSERS_CONFIG: dict[str, Any] = {
    "_class_name": "UNet2DModel", "_diffusers_version": "0.1.0",
    "act_fn": "silu", "attention_head_dim": None, "block_out_channels": [128, 256, 256, 256],
    "center_input_sample": False,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1, "in_channels": 3,
    "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-06, "norm_num_groups": 32,
    "out_channels": 3, "sample_size": 32, "time_embedding_type": "positional",
    "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
}


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > _SHOW else "")


def diffusers_unet_to_zoo(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a diffusers ``UNet2DModel`` state dict (DDPM blocks) to :class:`UNet` names.

    Accepts both attention key styles (``to_q/to_k/to_v/to_out.0`` and the legacy
    ``query/key/value/proj_attn`` of older Hub uploads).  Raises :class:`WeightsError` listing
    the first keys it does not recognise and, for attentions, the q/k/v keys that are missing.
    """
    out: dict[str, Tensor] = {}
    unexpected: list[str] = []
    qkv_parts: dict[tuple[str, str], dict[int, Tensor]] = {}  # (our attn prefix, weight|bias)

    for key, value in state_dict.items():
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
            side, i, j, layer, kind = m.groups()
            prefix = f"{side}.{i}.attn.{j}" if side else "mid.attn"
            if layer == "group_norm":
                out[f"{prefix}.norm.{kind}"] = value
            elif layer in _PROJ:
                out[f"{prefix}.proj.{kind}"] = value
            else:
                part = qkv_parts.setdefault((prefix, kind), {})
                if _QKV[layer] in part:
                    raise WeightsError(f"attention {prefix}: two keys for the same projection ({key})")
                part[_QKV[layer]] = value
            continue
        elif m := _SAMPLER_RE.match(key):
            side, i, sampler, kind = m.groups()
            if (side, sampler) in (("down", "downsamplers"), ("up", "upsamplers")):
                name = "downsample" if side == "down" else "upsample"
                out[f"{side}.{i}.{name}.conv.{kind}"] = value
                continue
        else:
            head, _, kind = key.rpartition(".")
            if head in _TOP and kind in ("weight", "bias"):
                out[f"{_TOP[head]}.{kind}"] = value
                continue
        unexpected.append(key)

    missing: list[str] = []
    for (prefix, kind), part in qkv_parts.items():
        absent = [n for n, idx in (("to_q", 0), ("to_k", 1), ("to_v", 2)) if idx not in part]
        if absent:
            missing.extend(f"{prefix}: {n}.{kind} (or legacy name)" for n in absent)
            continue
        out[f"{prefix}.qkv.{kind}"] = torch.cat([part[0], part[1], part[2]], dim=0)

    if unexpected or missing:
        msg = ["cannot convert diffusers UNet2DModel state dict:"]
        if unexpected:
            msg.append(f"unexpected keys: {_listing(unexpected)}")
        if missing:
            msg.append(f"missing attention keys: {_listing(missing)}")
        raise WeightsError(" ".join(msg))
    return out


ZOO_PREFIX = "prior.unet."  # where the UNet lives in a LatentModel with the ``ddpm`` prior


def diffusers_ddpm_to_zoo(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The named converter ``diffusers-unet`` (card ``zoo.weights.converter``): a diffusers
    ``UNet2DModel`` state dict (either attention key style) -> the state dict of a LatentModel whose
    prior is ``ddpm`` (``prior.unet.<our UNet names>``).  Key problems raise :class:`WeightsError`
    listing the first unexpected / missing keys; the model's strict load then lists any missing or
    mis-shaped ones."""
    if not state_dict:
        raise WeightsError("cannot convert an empty state dict (no tensors in the checkpoint)")
    return {ZOO_PREFIX + k: v for k, v in diffusers_unet_to_zoo(state_dict).items()}


def check_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Raise :class:`WeightsError` naming the first missing / unexpected / mis-shaped keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k} (model {tuple(own[k].shape)}, checkpoint {tuple(v.shape)})"
              for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
    if missing or unexpected or shapes:
        msg = ["checkpoint does not fit the UNet configuration:"]
        if missing:
            msg.append(f"missing keys: {_listing(missing)};")
        if unexpected:
            msg.append(f"unexpected keys: {_listing(unexpected)};")
        if shapes:
            msg.append(f"shape mismatches: {_listing(shapes)};")
        raise WeightsError(" ".join(msg).rstrip(";"))


def load_diffusers_unet(model: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Convert a diffusers state dict, check it against ``model`` and load it (strict)."""
    converted = diffusers_unet_to_zoo(state_dict)
    check_state_dict(model, converted)
    model.load_state_dict(converted, strict=True)


# --------------------------------------------------------------------------- config.json

_DOWN = {"DownBlock2D": False, "AttnDownBlock2D": True}
_UP = {"UpBlock2D": False, "AttnUpBlock2D": True}


def config_from_diffusers(config_json: Mapping[str, Any]) -> UNetConfig:
    """Translate a diffusers ``UNet2DModel`` config.json into :class:`UNetConfig`.

    Supports the DDPM family (``google/ddpm-cifar10-32``, ``google/ddpm-celebahq-256``,
    church / bedroom / cat 256): positional time embedding, ``DownBlock2D``/``AttnDownBlock2D``
    and ``UpBlock2D``/``AttnUpBlock2D`` with attention at the same resolutions on both paths.
    Any other option raises ``ValueError`` naming the field.
    """
    c = {k: v for k, v in config_json.items() if not k.startswith("_")}

    def bad(field: str, why: str) -> ValueError:
        return ValueError(f"unsupported diffusers UNet2DModel config: {field}={c.get(field)!r} ({why})")

    def require(field: str, allowed: tuple[Any, ...], default: Any) -> None:
        if c.get(field, default) not in allowed:
            raise bad(field, f"supported: {allowed}")

    known = {
        "sample_size", "in_channels", "out_channels", "center_input_sample",
        "time_embedding_type", "time_embedding_dim", "freq_shift", "flip_sin_to_cos",
        "down_block_types", "mid_block_type", "up_block_types", "block_out_channels",
        "layers_per_block", "mid_block_scale_factor", "downsample_padding", "downsample_type",
        "upsample_type", "dropout", "act_fn", "attention_head_dim", "norm_num_groups",
        "attn_norm_num_groups", "norm_eps", "resnet_time_scale_shift", "add_attention",
        "class_embed_type", "num_class_embeds", "num_train_timesteps",
    }
    for field in c:
        if field not in known:
            raise ValueError(f"unsupported diffusers UNet2DModel config field {field!r}")

    require("time_embedding_type", ("positional",), "positional")
    require("mid_block_type", ("UNetMidBlock2D",), "UNetMidBlock2D")
    require("mid_block_scale_factor", (1, 1.0), 1)
    require("downsample_type", ("conv",), "conv")
    require("upsample_type", ("conv",), "conv")
    require("act_fn", ("silu", "swish"), "silu")
    require("resnet_time_scale_shift", ("default",), "default")
    require("class_embed_type", (None,), None)
    require("num_class_embeds", (None,), None)
    require("downsample_padding", (0, 1), 1)

    size = c.get("sample_size")
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or size[0] != size[1]:
            raise bad("sample_size", "only square images")
        size = size[0]
    if not isinstance(size, int):
        raise bad("sample_size", "an integer is needed")

    widths = [int(w) for w in c.get("block_out_channels", (224, 448, 672, 896))]
    base = widths[0]
    if any(w % base for w in widths):
        raise bad("block_out_channels", "every width must be a multiple of the first")
    down = list(c.get("down_block_types", ()))
    up = list(c.get("up_block_types", ()))
    if len(down) != len(widths):
        raise bad("down_block_types", f"need one per block_out_channels entry ({len(widths)})")
    if len(up) != len(widths):
        raise bad("up_block_types", f"need one per block_out_channels entry ({len(widths)})")
    for name in down:
        if name not in _DOWN:
            raise bad("down_block_types", f"block {name!r}; supported: {sorted(_DOWN)}")
    for name in up:
        if name not in _UP:
            raise bad("up_block_types", f"block {name!r}; supported: {sorted(_UP)}")
    attn_down = {size // 2**l for l, n in enumerate(down) if _DOWN[n]}
    levels = len(widths)
    attn_up = {size // 2 ** (levels - 1 - i) for i, n in enumerate(up) if _UP[n]}
    if attn_down != attn_up:
        raise bad("up_block_types", f"attention resolutions {sorted(attn_up)} differ from the "
                                    f"down path's {sorted(attn_down)}")

    groups = c.get("norm_num_groups", 32)
    if not isinstance(groups, int):
        raise bad("norm_num_groups", "an integer is needed")
    if c.get("attn_norm_num_groups") not in (None, groups):
        raise bad("attn_norm_num_groups", "must be null or equal norm_num_groups")

    try:
        return UNetConfig(
            in_channels=int(c.get("in_channels", 3)),
            out_channels=int(c.get("out_channels", 3)),
            sample_size=size,
            channels=base,
            channel_mult=tuple(w // base for w in widths),
            num_res_blocks=int(c.get("layers_per_block", 2)),
            attention_resolutions=tuple(sorted(attn_down, reverse=True)),
            mid_attention=bool(c.get("add_attention", True)),
            attention_head_dim=c.get("attention_head_dim", 8),
            dropout=float(c.get("dropout", 0.0)),
            norm_groups=groups,
            norm_eps=float(c.get("norm_eps", 1e-5)),
            time_embed_dim=c.get("time_embedding_dim"),
            flip_sin_to_cos=bool(c.get("flip_sin_to_cos", True)),
            freq_shift=float(c.get("freq_shift", 0)),
            downsample_padding=int(c.get("downsample_padding", 1)),
            center_input=bool(c.get("center_input_sample", False)),
        )
    except ValueError as err:
        raise ValueError(f"diffusers UNet2DModel config does not give a valid UNet: {err}") from err

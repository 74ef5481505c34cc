"""The DDPM UNet of Ho et al. (2020), "Denoising Diffusion Probabilistic Models", as our own module.

The network predicts the noise ``eps_theta(x_t, t)`` that was mixed into ``x_t`` (eq. 12 of the
paper).  Layout (Ho et al., appendix B; PixelCNN++-style backbone):

    x ─ conv_in ─┬─ down[0] ─ ... ─ down[L-1] ─ mid ─ up[0] ─ ... ─ up[L-1] ─ GN ─ SiLU ─ conv_out
                 └───────────── skip connections (one per down-path output) ─────────────┘

* each down level ``l`` has ``num_res_blocks`` residual blocks at ``channels * channel_mult[l]``
  channels, an optional self-attention after every residual block (when the level's input
  resolution is in ``attention_resolutions``) and, except on the last level, a stride-2 conv;
* the middle is ResBlock, self-attention, ResBlock;
* each up level has ``num_res_blocks + 1`` residual blocks, each eating one skip tensor
  (concatenated on channels), the same optional attentions, and, except on the last level,
  nearest-neighbour x2 upsampling followed by a 3x3 conv;
* time conditioning: sinusoidal embedding of ``t`` (Transformer positional encoding) ->
  Linear -> SiLU -> Linear, added (after SiLU + Linear) to every residual block's hidden state.

The computation is the one of diffusers' ``UNet2DModel`` with ``DownBlock2D``/``AttnDownBlock2D``/
``UpBlock2D``/``AttnUpBlock2D`` blocks, so published checkpoints (``google/ddpm-cifar10-32``,
``google/ddpm-celebahq-256``, ...) load through :mod:`.convert`; the parameter names are ours.

Speed notes: the upsampling conv runs on the low-resolution map as four 2x2 "phase" convs
(16 instead of 36 multiply-adds per output pixel; see :class:`Upsample`), q, k and v share one
fused linear (one GEMM instead of three), attention uses
``torch.nn.functional.scaled_dot_product_attention``, SiLU runs in place when no gradient is
recorded, and the model works in ``torch.channels_last`` memory format (convert the model and the
input with ``.to(memory_format=torch.channels_last)``; outputs then come back channels-last).  In eval mode
on a CPU without autograd a batch of more than one runs channels-last whatever its input's format (a
contiguous input gets a contiguous output).
Results equal the reference computation up to float rounding (~1e-6 on CIFAR-10 inputs).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.errors import ShapeError  # a ValueError

__all__ = ["UNetConfig", "UNet", "timestep_embedding"]


@dataclass(frozen=True)
class UNetConfig:
    """Hyper-parameters of :class:`UNet`.

    ``block_out_channels`` of diffusers is ``channels * channel_mult[l]``; level ``l`` works at
    resolution ``sample_size / 2**l`` and gets self-attention iff that resolution is listed in
    ``attention_resolutions``.
    """

    in_channels: int = 3
    out_channels: int = 3
    sample_size: int = 32
    channels: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16,)
    mid_attention: bool = True
    attention_head_dim: int | None = None  # None: one head spanning all channels (Ho et al.)
    dropout: float = 0.0  # Ho et al. trained CIFAR-10 with 0.1
    norm_groups: int = 32
    norm_eps: float = 1e-6
    time_embed_dim: int | None = None  # None: 4 * channels
    flip_sin_to_cos: bool = False  # embedding order [sin, cos] (False) or [cos, sin] (True)
    freq_shift: float = 1.0  # frequencies exp(-ln(10000) * i / (half - freq_shift))
    downsample_padding: int = 0  # 0: pad right/bottom by one (TF "SAME"), 1: symmetric pad
    center_input: bool = False  # map inputs in [0, 1] to [-1, 1] first

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_mult", tuple(int(m) for m in self.channel_mult))
        object.__setattr__(
            self, "attention_resolutions", tuple(int(r) for r in self.attention_resolutions)
        )
        problems: list[str] = []
        for name in ("in_channels", "out_channels", "sample_size", "channels", "num_res_blocks",
                     "norm_groups"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if not self.channel_mult or any(m < 1 for m in self.channel_mult):
            problems.append(f"channel_mult must be non-empty positive integers, got {self.channel_mult}")
        if problems:
            raise ValueError("invalid UNetConfig: " + "; ".join(problems))
        levels = len(self.channel_mult)
        if self.sample_size % 2 ** (levels - 1):
            problems.append(
                f"sample_size {self.sample_size} must be divisible by 2**(len(channel_mult)-1) "
                f"= {2 ** (levels - 1)}"
            )
        widths = [self.channels * m for m in self.channel_mult]
        for width in {self.channels, *widths}:
            if width % self.norm_groups:
                problems.append(f"norm_groups {self.norm_groups} must divide channel width {width}")
            if self.attention_head_dim is not None and width % self.attention_head_dim:
                problems.append(
                    f"attention_head_dim {self.attention_head_dim} must divide channel width {width}"
                )
        resolutions = {self.sample_size // 2**l for l in range(levels)}
        for r in self.attention_resolutions:
            if r not in resolutions:
                problems.append(
                    f"attention_resolutions entry {r} is not a level resolution {sorted(resolutions)}"
                )
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if self.downsample_padding not in (0, 1):
            problems.append(f"downsample_padding must be 0 or 1, got {self.downsample_padding}")
        if problems:
            raise ValueError("invalid UNetConfig: " + "; ".join(problems))

    @property
    def block_out_channels(self) -> tuple[int, ...]:
        return tuple(self.channels * m for m in self.channel_mult)

    @property
    def temb_dim(self) -> int:
        return self.time_embed_dim or 4 * self.channels

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists instead of tuples) for YAML model cards."""
        d = asdict(self)
        d["channel_mult"] = list(self.channel_mult)
        d["attention_resolutions"] = list(self.attention_resolutions)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "UNetConfig":
        """Build from a card's mapping; unknown keys raise ValueError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown UNetConfig field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**dict(d))

    @classmethod
    def ddpm_cifar10(cls) -> "UNetConfig":
        """The published ``google/ddpm-cifar10-32`` architecture (35.7M parameters)."""
        return cls()

    @classmethod
    def digits_8x8(cls) -> "UNetConfig":
        """A small net for 8x8 single-channel images (scikit-learn digits), 0.41M parameters."""
        return cls(in_channels=1, out_channels=1, sample_size=8, channels=32, channel_mult=(1, 1),
                   num_res_blocks=2, attention_resolutions=(4,), norm_groups=8)


def _act(h: Tensor) -> Tensor:
    """SiLU (swish), in place when autograd is not recording (saves an allocation)."""
    return F.silu(h, inplace=not torch.is_grad_enabled())


def timestep_embedding(t: Tensor, freqs: Tensor, flip_sin_to_cos: bool) -> Tensor:
    """Sinusoidal embedding (Vaswani et al. 2017, as used by Ho et al.):

        emb(t) = [sin(t * w_0), ..., sin(t * w_{h-1}), cos(t * w_0), ..., cos(t * w_{h-1})]
        w_i = exp(-ln(10000) * i / (h - freq_shift)),  h = dim // 2

    (``[cos, sin]`` order when ``flip_sin_to_cos``; a zero column is appended for odd ``dim``).
    """
    args = t[:, None].float() * freqs[None, :]
    if flip_sin_to_cos:
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class ResBlock(nn.Module):
    """h = conv1(SiLU(GN(x))) + Linear(SiLU(temb)); out = shortcut(x) + conv2(drop(SiLU(GN(h)))).

    ``temb_dim=None``: no time conditioning (the block of an autoencoder's encoder / decoder,
    diffusers' ``ResnetBlock2D`` with ``temb_channels=None``); ``forward(x)`` then takes no temb."""

    def __init__(self, cin: int, cout: int, temb_dim: int | None, groups: int, eps: float, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb_proj = nn.Linear(temb_dim, cout) if temb_dim is not None else None
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: Tensor, temb_act: Tensor | None = None) -> Tensor:
        """``temb_act`` is SiLU(temb), computed once per forward by the caller (None without time conditioning)."""
        h = self.conv1(_act(self.norm1(x)))
        if self.temb_proj is not None:
            h = h + self.temb_proj(temb_act)[:, :, None, None]
        h = self.conv2(self.dropout(_act(self.norm2(h))))
        shortcut = x if self.skip is None else self.skip(x)
        return shortcut + h


class SelfAttention(nn.Module):
    """Non-local block: x + proj(softmax(q k^T / sqrt(d)) v), q,k,v = W_qkv GN(x) over H*W positions."""

    def __init__(self, channels: int, groups: int, eps: float, head_dim: int | None):
        super().__init__()
        self.heads = 1 if head_dim is None else channels // head_dim
        self.norm = nn.GroupNorm(groups, channels, eps=eps)
        self.qkv = nn.Linear(channels, 3 * channels)  # rows: [W_q; W_k; W_v]
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        b, c, hgt, wid = x.shape
        n, heads = hgt * wid, self.heads
        # [B, C, H, W] -> [B, N, C]: a free view for channels-last input
        h = self.norm(x).flatten(2).transpose(1, 2)
        qkv = self.qkv(h).view(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # [B, heads, N, d]
        out = self.proj(out.transpose(1, 2).reshape(b, n, c))  # [B, N, C]
        # back to [B, C, H, W] as a (channels-last strided) view, then the residual
        return x + out.transpose(1, 2).view(b, c, hgt, wid)


class Downsample(nn.Module):
    """3x3 conv, stride 2.  padding 0 pads one zero row/column at the bottom/right (TF 'SAME')."""

    def __init__(self, channels: int, padding: int):
        super().__init__()
        self.asymmetric = padding == 0
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x: Tensor) -> Tensor:
        if self.asymmetric:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then 3x3 conv (padding 1), computed without the x2 image.

    With U = nearest-x2(I), output pixel (2i+a, 2j+b) only sees source rows {i-1, i} (a = 0:
    kernel rows 0 | 1+2) or {i, i+1} (a = 1: rows 0+1 | 2), and likewise for columns.  So the
    four output phases are 2x2 convolutions of I with summed taps: one conv with 4*C outputs,
    16 instead of 36 multiply-adds per output pixel, then the phases are interleaved.  Equal to
    conv(upsample(x)) up to float rounding of the summed taps.
    """

    # _TAPS[a, p, r]: weight of kernel row r in the 2-tap kernel row p of phase a
    _TAPS = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]],
                          [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        # (weight, bias) it was built from, phase weight, phase bias; reused while equal
        self._cache: tuple[Tensor, Tensor, Tensor, Tensor] | None = None

    def _phase_weights(self) -> tuple[Tensor, Tensor]:
        w, b = self.conv.weight, self.conv.bias
        if not torch.is_grad_enabled():
            c = self._cache  # compared by value: safe even for updates made through .data
            if c is not None and c[0].device == w.device and c[0].dtype == w.dtype \
                    and torch.equal(c[0], w) and torch.equal(c[1], b):
                return c[2], c[3]
        cout, cin = w.shape[:2]
        taps = self._TAPS.to(device=w.device, dtype=w.dtype)
        # K[(a, b, p, q), (r, s)] = TAPS[a, p, r] * TAPS[b, q, s]
        k = torch.einsum("apr,bqs->abpqrs", taps, taps).reshape(16, 9)
        weight = (w.reshape(cout * cin, 9) @ k.T).view(cout, cin, 2, 2, 2, 2)
        weight = weight.permute(2, 3, 0, 1, 4, 5).reshape(4 * cout, cin, 2, 2)  # (a, b) major
        bias = b.repeat(4)
        if not torch.is_grad_enabled():
            self._cache = (w.detach().clone(), b.detach().clone(), weight, bias)
        return weight, bias

    def forward(self, x: Tensor) -> Tensor:
        bsz, c, h, w = x.shape
        weight, bias = self._phase_weights()
        # y[:, phase] at (o_r, o_c) sees source rows (o_r - 1, o_r): phase a uses o_r = i + a
        y = F.conv2d(x, weight, bias, padding=1).unflatten(1, (2, 2, c))  # [B, a, b, C, H+1, W+1]
        if x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last):
            out = x.new_empty((bsz, c, h, 2, w, 2))
            for a in (0, 1):
                for b in (0, 1):
                    out[:, :, :, a, :, b] = y[:, a, b, :, a:a + h, b:b + w]
            return out.view(bsz, c, 2 * h, 2 * w)
        out = x.new_empty((bsz, h, 2, w, 2, c))  # channels-last result
        for a in (0, 1):
            for b in (0, 1):
                out[:, :, a, :, b, :] = y[:, a, b, :, a:a + h, b:b + w].permute(0, 2, 3, 1)
        return out.view(bsz, 2 * h, 2 * w, c).permute(0, 3, 1, 2)


class Level(nn.Module):
    """One resolution level: residual blocks, optional attentions, optional resampler."""

    def __init__(self) -> None:
        super().__init__()
        self.res = nn.ModuleList()
        self.attn = nn.ModuleList()  # empty, or one per residual block
        self.downsample: Downsample | None = None
        self.upsample: Upsample | None = None


class Middle(nn.Module):
    def __init__(self, ch: int, cfg: UNetConfig):
        super().__init__()
        g, eps = cfg.norm_groups, cfg.norm_eps
        self.res1 = ResBlock(ch, ch, cfg.temb_dim, g, eps, cfg.dropout)
        self.attn = SelfAttention(ch, g, eps, cfg.attention_head_dim) if cfg.mid_attention else None
        self.res2 = ResBlock(ch, ch, cfg.temb_dim, g, eps, cfg.dropout)

    def forward(self, h: Tensor, temb_act: Tensor) -> Tensor:
        h = self.res1(h, temb_act)
        if self.attn is not None:
            h = self.attn(h)
        return self.res2(h, temb_act)


class TimeEmbedding(nn.Module):
    """temb = fc2(SiLU(fc1(sinusoid(t))))."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.half = cfg.channels // 2
        self.freq_shift = cfg.freq_shift
        self.flip = cfg.flip_sin_to_cos
        self.odd = cfg.channels % 2 == 1
        self.fc1 = nn.Linear(cfg.channels, cfg.temb_dim)
        self.fc2 = nn.Linear(cfg.temb_dim, cfg.temb_dim)

    def forward(self, t: Tensor) -> Tensor:
        # w_i = exp(-ln(10000) * i / (half - freq_shift)), in float32 whatever the model dtype
        # (built per call: a cached buffer would be rounded by model.to(bfloat16))
        exponent = -math.log(10000.0) * torch.arange(self.half, dtype=torch.float32, device=t.device)
        freqs = torch.exp(exponent / (self.half - self.freq_shift))
        emb = timestep_embedding(t, freqs, self.flip)
        if self.odd:
            emb = F.pad(emb, (0, 1))
        return self.fc2(F.silu(self.fc1(emb.to(self.fc1.weight.dtype))))


class UNet(nn.Module):
    """epsilon-prediction UNet: ``forward(x [B,C,H,W], t [B]) -> eps [B,C,H,W]``."""

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        cfg = config or UNetConfig()
        self.config = cfg
        g, eps, temb = cfg.norm_groups, cfg.norm_eps, cfg.temb_dim
        widths = cfg.block_out_channels
        levels = len(widths)

        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.channels, 3, padding=1)
        self.time_embed = TimeEmbedding(cfg)

        skips = [cfg.channels]  # channel count of every tensor pushed onto the skip stack
        ch = cfg.channels
        self.down = nn.ModuleList()
        for l, width in enumerate(widths):
            level = Level()
            with_attn = cfg.sample_size // 2**l in cfg.attention_resolutions
            for _ in range(cfg.num_res_blocks):
                level.res.append(ResBlock(ch, width, temb, g, eps, cfg.dropout))
                ch = width
                if with_attn:
                    level.attn.append(SelfAttention(ch, g, eps, cfg.attention_head_dim))
                skips.append(ch)
            if l < levels - 1:
                level.downsample = Downsample(ch, cfg.downsample_padding)
                skips.append(ch)
            self.down.append(level)

        self.mid = Middle(ch, cfg)

        self.up = nn.ModuleList()  # lowest resolution first
        for l in reversed(range(levels)):
            level = Level()
            width = widths[l]
            with_attn = cfg.sample_size // 2**l in cfg.attention_resolutions
            for _ in range(cfg.num_res_blocks + 1):
                level.res.append(ResBlock(ch + skips.pop(), width, temb, g, eps, cfg.dropout))
                ch = width
                if with_attn:
                    level.attn.append(SelfAttention(ch, g, eps, cfg.attention_head_dim))
            if l > 0:
                level.upsample = Upsample(ch)
            self.up.append(level)
        assert not skips

        self.norm_out = nn.GroupNorm(g, ch, eps=eps)
        self.conv_out = nn.Conv2d(ch, cfg.out_channels, 3, padding=1)

    def _check_inputs(self, x: Tensor, t: Tensor | int | float) -> Tensor:
        cfg = self.config
        expected = (cfg.in_channels, cfg.sample_size, cfg.sample_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ShapeError(
                f"UNet expects input of shape [B, {expected[0]}, {expected[1]}, {expected[2]}] "
                f"(sample_size {cfg.sample_size}), got {list(x.shape)}"
            )
        if not torch.is_tensor(t):
            t = torch.tensor([t], device=x.device)
        if t.dim() == 0 or t.numel() == 1:
            return t.reshape(1).to(x.device).expand(x.shape[0])
        if t.dim() != 1 or t.shape[0] != x.shape[0]:
            raise ShapeError(
                f"timesteps must be a scalar or of shape [{x.shape[0]}], got {list(t.shape)}"
            )
        return t.to(x.device)

    def forward(self, x: Tensor, t: Tensor | int | float) -> Tensor:
        """Predict the noise in ``x`` (= x_t) at diffusion step(s) ``t`` (0-based, as in diffusers)."""
        t = self._check_inputs(x, t)
        if self.config.center_input:
            x = 2 * x - 1.0
        temb_act = F.silu(self.time_embed(t))  # every ResBlock uses SiLU(temb)

        h = self.conv_in(x)
        # in eval mode on a CPU without autograd the body runs channels-last (faster convolutions: 0.90x the time
        # at batch 8, tools/bench_unet.py): a contiguous input's first feature map is converted once and the output
        # converted back.  A batch of one keeps its format: with contiguous weights every convolution would copy
        # them to channels-last, more than it saves there
        back = not (self.training or torch.is_grad_enabled()) and h.device.type == "cpu" and h.dim() == 4 \
            and h.shape[0] > 1 and not h.is_contiguous(memory_format=torch.channels_last)
        if back:
            h = h.contiguous(memory_format=torch.channels_last)
        stack = [h]
        for level in self.down:
            for i, res in enumerate(level.res):
                h = res(h, temb_act)
                if len(level.attn):
                    h = level.attn[i](h)
                stack.append(h)
            if level.downsample is not None:
                h = level.downsample(h)
                stack.append(h)

        h = self.mid(h, temb_act)

        for level in self.up:
            for i, res in enumerate(level.res):
                h = res(torch.cat([h, stack.pop()], dim=1), temb_act)
                if len(level.attn):
                    h = level.attn[i](h)
            if level.upsample is not None:
                h = level.upsample(h)

        out = self.conv_out(_act(self.norm_out(h)))
        return out.contiguous() if back else out

"""Diffusion building blocks: UNet parity with diffusers, checkpoint conversion, the noise
schedule / variational bound, and the samplers (against diffusers' schedulers)."""
from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("diffusers")
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel  # noqa: E402

from zoo_plugins.diffusion import convert, sampling, schedule, unet  # noqa: E402

UNet, UNetConfig = unet.UNet, unet.UNetConfig
NoiseSchedule = schedule.NoiseSchedule

CIFAR10_CONFIG = convert.DDPM_CIFAR10_DIFFUSERS_CONFIG
CELEBAHQ_CONFIG = {  # google/ddpm-celebahq-256 (church/bedroom/cat share the layout)
    **CIFAR10_CONFIG,
    "block_out_channels": [128, 128, 256, 256, 512, 512],
    "down_block_types": ["DownBlock2D"] * 4 + ["AttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "AttnUpBlock2D"] + ["UpBlock2D"] * 4,
    "sample_size": 256,
}
LEGACY = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}


def _diffusers_kwargs(config: dict) -> dict:
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _legacy(state_dict: dict) -> dict:
    out = {}
    for key, value in state_dict.items():
        for new, old in LEGACY.items():
            key = key.replace(f".{new}.", f".{old}.")
        out[key] = value
    return out


@pytest.fixture(scope="module")
def cifar_pair():
    torch.manual_seed(0)
    ref = UNet2DModel(**_diffusers_kwargs(CIFAR10_CONFIG)).eval()
    ours = UNet(convert.config_from_diffusers(CIFAR10_CONFIG)).eval()
    return ref, ours


# --------------------------------------------------------------------------- UNet

@pytest.mark.parametrize("style", ["new", "legacy"])
def test_cifar10_unet_matches_diffusers(cifar_pair, style):
    ref, ours = cifar_pair
    sd = ref.state_dict()
    if style == "legacy":
        sd = _legacy(sd)
        assert any(".query." in k for k in sd) and not any(".to_q." in k for k in sd)
    with torch.no_grad():
        for p in ours.parameters():
            p.zero_()
    convert.load_diffusers_unet(ours, sd)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 32, 32, generator=g)
    t = torch.randint(0, 1000, (2,), generator=g)
    with torch.inference_mode():
        expected = ref(x, t).sample
        got = ours(x, t)
    assert got.shape == (2, 3, 32, 32)
    assert expected.abs().max() > 0.1  # a non-trivial output
    assert (got - expected).abs().max().item() < 1e-5
    # float timesteps give the same answer as long ones
    with torch.inference_mode():
        assert torch.allclose(ours(x, t.float()), got, atol=1e-6)


def test_cifar10_parameter_count(cifar_pair):
    ref, ours = cifar_pair
    n = sum(p.numel() for p in ours.parameters())
    assert n == sum(p.numel() for p in ref.parameters())
    assert round(n / 1e6, 1) == 35.7


def test_channels_last_gives_same_output(cifar_pair):
    _, ours = cifar_pair
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([3, 500])
    with torch.inference_mode():
        plain = ours(x, t)
        ours.to(memory_format=torch.channels_last)
        try:
            cl = ours(x.to(memory_format=torch.channels_last), t)
        finally:
            ours.to(memory_format=torch.contiguous_format)
    assert (cl - plain).abs().max().item() < 1e-4


def test_wrong_image_size_names_expected_and_got(cifar_pair):
    _, ours = cifar_pair
    with pytest.raises(ValueError, match=r"\[B, 3, 32, 32\].*got \[2, 3, 28, 28\]"):
        ours(torch.zeros(2, 3, 28, 28), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"timesteps"):
        ours(torch.zeros(2, 3, 32, 32), torch.zeros(3, dtype=torch.long))


def test_256_family_layout_scaled_down_matches_diffusers():
    """The celebahq/church/bedroom/cat layout (6 levels, attention on one level), narrower and at
    64px, with the other options flipped: multi-head attention, symmetric downsample padding,
    [cos, sin] embedding and freq_shift 0."""
    config = {**CELEBAHQ_CONFIG, "block_out_channels": [32, 32, 64, 64, 128, 128], "sample_size": 64,
              "attention_head_dim": 16, "downsample_padding": 1, "flip_sin_to_cos": True,
              "freq_shift": 0, "norm_num_groups": 16}
    torch.manual_seed(3)
    ref = UNet2DModel(**_diffusers_kwargs(config)).eval()
    cfg = convert.config_from_diffusers(config)
    assert cfg.attention_resolutions == (4,) and cfg.channel_mult == (1, 1, 2, 2, 4, 4)
    ours = UNet(cfg).eval()
    convert.load_diffusers_unet(ours, ref.state_dict())
    assert ours.down[4].attn[0].heads == 8
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert (ours(x, torch.tensor([17])) - ref(x, 17).sample).abs().max().item() < 1e-5


def test_digits_config_round_trip_and_size():
    cfg = UNetConfig.digits_8x8()
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    assert isinstance(cfg.to_dict()["channel_mult"], list)  # YAML-friendly
    net = UNet(cfg)
    n = sum(p.numel() for p in net.parameters())
    assert 100_000 < n < 1_000_000
    out = net(torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 500, 999]))
    assert out.shape == (4, 1, 8, 8)
    out.square().mean().backward()  # trains: gradients reach the first layer
    assert net.conv_in.weight.grad is not None and net.conv_in.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown UNetConfig field"):
        UNetConfig.from_dict({**cfg.to_dict(), "chanels": 3})
    with pytest.raises(ValueError, match="norm_groups"):
        UNetConfig(channels=30)


# --------------------------------------------------------------------------- conversion

def test_config_from_diffusers_published_configs():
    assert convert.config_from_diffusers(CIFAR10_CONFIG) == UNetConfig.ddpm_cifar10()
    cfg = convert.config_from_diffusers(CELEBAHQ_CONFIG)
    assert cfg.block_out_channels == (128, 128, 256, 256, 512, 512)
    assert cfg.attention_resolutions == (16,) and cfg.sample_size == 256


@pytest.mark.parametrize("field, value", [
    ("time_embedding_type", "fourier"),
    ("resnet_time_scale_shift", "scale_shift"),
    ("down_block_types", ["DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D"]),
    ("up_block_types", ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"]),  # asymmetric
    ("class_embed_type", "timestep"),
    ("some_new_option", 1),
])
def test_config_from_diffusers_rejects_unsupported(field, value):
    with pytest.raises(ValueError, match=field):
        convert.config_from_diffusers({**CIFAR10_CONFIG, field: value})


def test_converter_reports_key_mismatches(cifar_pair):
    ref, ours = cifar_pair
    sd = dict(ref.state_dict())
    junk = {**sd, "down_blocks.0.mystery.weight": torch.zeros(1)}
    with pytest.raises(convert.WeightsError, match=r"unexpected keys: down_blocks\.0\.mystery\.weight"):
        convert.diffusers_unet_to_zoo(junk)
    no_q = {k: v for k, v in sd.items() if k != "mid_block.attentions.0.to_q.weight"}
    with pytest.raises(convert.WeightsError, match=r"mid\.attn: to_q\.weight"):
        convert.diffusers_unet_to_zoo(no_q)
    no_conv = {k: v for k, v in sd.items() if not k.startswith("conv_out.")}
    with pytest.raises(convert.WeightsError, match=r"missing keys: conv_out\.weight, conv_out\.bias"):
        convert.load_diffusers_unet(ours, no_conv)
    small = UNet(UNetConfig.digits_8x8())
    with pytest.raises(convert.WeightsError, match="unexpected keys|shape mismatches"):
        convert.load_diffusers_unet(small, sd)


# --------------------------------------------------------------------------- schedule

def test_betas_match_diffusers():
    lin = DDPMScheduler(num_train_timesteps=1000)
    assert torch.allclose(schedule.linear_betas(1000).float(), lin.betas)
    assert torch.allclose(NoiseSchedule.linear().alphas_cumprod.float(), lin.alphas_cumprod, rtol=1e-4)
    cos = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    assert torch.allclose(schedule.cosine_betas(1000).float(), cos.betas, atol=1e-6)


def test_q_sample_statistics():
    s = NoiseSchedule.linear()
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((100_000, 1), 0.7)
    for i in (0, 250, 999):
        t = torch.full((100_000,), i)
        xt = schedule.q_sample(s, x0, t, torch.randn(x0.shape, generator=g))
        ab = s.alphas_cumprod[i].item()
        assert abs(xt.mean().item() - math.sqrt(ab) * 0.7) < 0.01
        assert abs(xt.var().item() - (1 - ab)) < 0.01 * max(1 - ab, 1e-3) + 2e-4


def test_posterior_matches_ddpm_scheduler():
    T = 1000
    sch = DDPMScheduler(num_train_timesteps=T, clip_sample=False, variance_type="fixed_small")
    # run diffusers' formulas in float64 (its float32 1 - a_t / a_{t-1} loses ~1e-4 relative)
    sch.betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    sch.alphas = 1.0 - sch.betas
    sch.alphas_cumprod = torch.cumprod(sch.alphas, dim=0)
    s = NoiseSchedule.linear(T)
    g = torch.Generator().manual_seed(4)
    xt = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    for i in (1, 10, 500, 999):
        t = torch.full((2,), i)
        p = schedule.p_mean_variance(s, eps, xt, t, "fixed_small")
        # DDPMScheduler.step draws z with the generator: prev = mean + sqrt(var) * z
        prev = sch.step(eps, i, xt, generator=torch.Generator().manual_seed(i)).prev_sample
        z = torch.randn(xt.shape, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
        var = sch._get_variance(i).item()
        assert math.isclose(p.variance[0, 0, 0, 0].item(), var, rel_tol=1e-9)
        assert (p.mean - (prev - var**0.5 * z)).abs().max().item() < 1e-9
        # posterior q(x_{t-1}|x_t, x0) with the predicted x0 is that same mean (eqs. 6-7)
        mean, qvar, _ = schedule.q_posterior(s, p.pred_x0, xt, t)
        assert torch.allclose(mean, p.mean) and torch.allclose(qvar, p.variance)
        # eq. 11 form of the mean
        b, ab = s.betas[i].item(), s.alphas_cumprod[i].item()
        eq11 = (xt - b / math.sqrt(1 - ab) * eps) / math.sqrt(1 - b)
        assert (eq11 - p.mean).abs().max().item() < 1e-9
        large = schedule.p_mean_variance(s, eps, xt, t, "fixed_large")
        assert math.isclose(large.variance[0, 0, 0, 0].item(), b, rel_tol=1e-6)


def test_prior_term_is_near_zero_for_linear_schedule():
    s = NoiseSchedule.linear(1000)
    x0 = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    lt = schedule.prior_kl(s, x0)
    assert (lt > 0).all()
    assert (schedule.bits_per_dim(lt, (3, 32, 32)) < 1e-4).all()  # Ho et al.: ~1e-5 bits/dim


@pytest.mark.parametrize("mean, log_scale", [(0.3, -3.0), (0.95, -6.0), (-1.2, 0.5), (0.0, -9.0)])
def test_discretized_gaussian_sums_to_one_over_256_bins(mean, log_scale):
    x = (torch.arange(256, dtype=torch.float64) / 127.5 - 1.0)
    logp = schedule.discretized_gaussian_log_likelihood(
        x, torch.full_like(x, mean), torch.full_like(x, log_scale))
    assert (logp <= 0).all()
    assert abs(logp.exp().sum().item() - 1.0) < 1e-6


def _pixels(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g).double() / 127.5 - 1.0


def test_bound_with_oracle_noise_reduces_to_decoder_and_prior():
    """eps_model = the true noise => x0_hat = x0, every KL term L_1.. vanishes (fixed_small) and
    L_0 is the decoder's mass of the true bin under N(x0, beta~_2)."""
    s = NoiseSchedule.linear(50, 1e-3, 0.2)
    x0 = _pixels((3, 1, 4, 4), 0)

    def oracle(xt, t):
        ab = s.alphas_cumprod[t].view(-1, 1, 1, 1).to(xt.dtype)
        return (xt - ab.sqrt() * x0.repeat(len(t) // len(x0), 1, 1, 1)) / (1 - ab).sqrt()

    out = schedule.variational_bound(s, oracle, x0, chunk=7, generator=torch.Generator().manual_seed(1))
    assert out.exact and out.terms.shape == (3, 50) and torch.equal(out.timesteps, torch.arange(50))
    assert out.terms[:, 1:].abs().max().item() < 1e-9
    sigma = s.posterior_variance[1].sqrt().item()
    edge = x0.abs() > 0.999
    half = (1 / 255) / sigma
    inner = -math.log(math.erf(half / math.sqrt(2)))   # -log(Phi(h) - Phi(-h))
    outer = -math.log(0.5 * (1 + math.erf(half / math.sqrt(2))))  # -log Phi(h)
    expected = torch.where(edge, torch.tensor(outer, dtype=torch.float64), inner).flatten(1).sum(1)
    assert torch.allclose(out.terms[:, 0], expected, rtol=1e-6)
    assert torch.allclose(out.total, out.prior + out.terms.sum(1))
    assert torch.allclose(out.prior, schedule.prior_kl(s, x0))


def test_subsampled_bound_is_unbiased():
    s = NoiseSchedule.linear(10, 1e-2, 0.3)
    x0 = _pixels((2, 1, 2, 2), 2)

    def eps_model(xt, t):  # an imperfect, deterministic noise predictor
        return 0.8 * xt + 0.01 * t.view(-1, 1, 1, 1)

    g = torch.Generator().manual_seed(5)
    exact = torch.stack([schedule.variational_bound(s, eps_model, x0, generator=g, chunk=10).total
                         for _ in range(300)])
    sub_runs = [schedule.variational_bound(s, eps_model, x0, num_timesteps=3, generator=g, chunk=3)
                for _ in range(1500)]
    sub = torch.stack([r.total for r in sub_runs])
    r = sub_runs[0]
    assert not r.exact and r.terms.shape == (2, 3)
    assert torch.allclose(r.total, r.prior + 10 * r.terms.mean(1))
    stderr = (exact.var(0) / len(exact) + sub.var(0) / len(sub)).sqrt()
    assert ((exact.mean(0) - sub.mean(0)).abs() < 4 * stderr).all()
    # terms are in nats per sample; bits/dim divides by D ln 2
    assert math.isclose(schedule.bits_per_dim(4 * math.log(2.0), (1, 2, 2)), 1.0)


def test_bad_timesteps_and_ddim_steps_raise():
    s = NoiseSchedule.linear(100)
    x = torch.zeros(2, 1, 2, 2)
    with pytest.raises(ValueError, match=r"0\.\.99.*max 100"):
        schedule.q_sample(s, x, torch.tensor([0, 100]), x)
    with pytest.raises(ValueError, match="min -1"):
        schedule.p_mean_variance(s, x, x, torch.tensor([-1, 5]))
    with pytest.raises(ValueError, match=r"DDIM steps must be in 1\.\.T = 100, got 101"):
        schedule.ddim_timesteps(100, 101)
    with pytest.raises(ValueError, match="DDIM steps"):
        sampling.ddim_sample(lambda a, b: a, s, (1, 1, 2, 2), num_steps=1000)
    with pytest.raises(ValueError, match="steps_offset"):
        schedule.ddim_timesteps(100, 10, steps_offset=10)


# --------------------------------------------------------------------------- samplers

def _eps_fn(x, t):
    return torch.sin(3 * x + t.view(-1, 1, 1, 1).float() / 100) * 0.5


@pytest.mark.parametrize("steps, offset, eta", [(10, 0, 0.0), (7, 1, 0.0), (10, 0, 1.0)])
def test_ddim_matches_diffusers_scheduler(steps, offset, eta):
    s = NoiseSchedule.linear(1000)
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    ours = sampling.ddim_sample(_eps_fn, s, x_T.shape, num_steps=steps, eta=eta, steps_offset=offset,
                                x_T=x_T, generator=torch.Generator().manual_seed(7))
    sch = DDIMScheduler(num_train_timesteps=1000, steps_offset=offset)
    sch.set_timesteps(steps)
    assert torch.equal(sch.timesteps, schedule.ddim_timesteps(1000, steps, offset))
    g, x = torch.Generator().manual_seed(7), x_T.clone()
    for t in sch.timesteps:
        x = sch.step(_eps_fn(x, t.expand(2)), t, x, eta=eta, generator=g).prev_sample
    assert (ours - x).abs().max().item() < 1e-5


def test_ddpm_ancestral_matches_diffusers_and_is_reproducible():
    T = 50
    s = NoiseSchedule.linear(T)
    shape = (2, 1, 4, 4)
    ours = sampling.ddpm_sample(_eps_fn, s, shape, generator=torch.Generator().manual_seed(8))
    again = sampling.ddpm_sample(_eps_fn, s, shape, generator=torch.Generator().manual_seed(8))
    assert torch.equal(ours, again)
    sch = DDPMScheduler(num_train_timesteps=T, variance_type="fixed_small", clip_sample=True)
    sch.set_timesteps(T)
    g = torch.Generator().manual_seed(8)
    x = torch.randn(shape, generator=g)
    for t in sch.timesteps:
        x = sch.step(_eps_fn(x, t.expand(2)), t, x, generator=g).prev_sample
    assert (ours - x).abs().max().item() < 1e-4


@pytest.mark.parametrize("channels_last", [False, True])
def test_subpixel_upsample_equals_interpolate_then_conv(channels_last):
    torch.manual_seed(9)
    up = unet.Upsample(16)
    x = torch.randn(2, 16, 5, 7)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    ref = up.conv(torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))
    with torch.no_grad():
        assert (up(x) - ref).abs().max().item() < 1e-5
        up.conv.weight.data.mul_(2.0)  # cached phase weights follow updates, even via .data
        assert (up(x) - up.conv(torch.nn.functional.interpolate(x, scale_factor=2.0))).abs().max() < 1e-5
    y = up(x.requires_grad_())  # and gradients flow to the 3x3 kernel
    y.sum().backward()
    assert up.conv.weight.grad is not None and x.grad is not None

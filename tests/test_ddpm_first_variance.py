"""The DDPM decoder's sigma_1^2 at t = 1 (beta~_1 = 0): a stated card option, first_variance."""
from __future__ import annotations

import pytest
import torch

from make_cards import make_card
from zoo_plugins.diffusion.schedule import NoiseSchedule, p_mean_variance

TINY_UNET = {"channels": 16, "channel_mult": [1, 1], "num_res_blocks": 1, "attention_resolutions": [4], "norm_groups": 8}
X8 = (torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(3)) * 255).to(torch.uint8)


def build(variance="fixed-large", **extra):
    from zoo.assemble import build_model

    card = make_card("ddpm-tiny", metadata={"license": "apache-2.0"}, latent={"shape": [1, 8, 8]},
                     encoder={"name": "ddpm-noising"}, decoder={"name": "ddpm-decoder"},
                     prior={"name": "ddpm", "unet": TINY_UNET, "timesteps": 20, "variance": variance, **extra},
                     objective={"loss": "simple"})
    torch.manual_seed(0)
    return build_model(card)


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_large"])
def test_default_is_beta_tilde_2_as_before(variance):
    s = NoiseSchedule.linear(50)
    post = s.betas * (1 - s.alphas_cumprod_prev) / (1 - s.alphas_cumprod)    # beta~_t (eq. 7), beta~_1 = 0
    today = {"fixed_small": torch.cat([post[1:2], post[1:]]).log(),         # Ho et al.'s code, both variances
             "fixed_large": torch.cat([post[1:2], s.betas[1:]]).log()}[variance]
    xt, eps = torch.randn(50, 1, 2, 2, dtype=torch.float64), torch.randn(50, 1, 2, 2, dtype=torch.float64)
    t = torch.arange(50)
    got = p_mean_variance(s, eps, xt, t, variance).log_variance[:, 0, 0, 0]
    assert torch.equal(got, today)
    beta1 = p_mean_variance(NoiseSchedule(s.betas, first_variance="beta_1"), eps, xt, t, variance).log_variance[:, 0, 0, 0]
    assert beta1[0] == pytest.approx(float(s.betas[0].log())) and torch.equal(beta1[1:], today[1:])


def test_the_option_moves_l0_alone():
    a, b = build(), build(first_variance="beta_1")
    b.load_state_dict(a.state_dict())
    assert a.prior.schedule.first_variance == "beta_tilde_2" and b.prior.schedule.first_variance == "beta_1"
    torch.manual_seed(1)
    ta = a.elbo(X8)
    torch.manual_seed(1)
    tb = b.elbo(X8)
    assert torch.allclose(ta.rate, tb.rate)                        # L_T and the KL steps do not see sigma_1
    assert (ta.distortion - tb.distortion).abs().min() > 1e-3      # L_0 = -log p(x_0|x_1) does
    default = build(first_variance="beta_tilde_2")
    default.load_state_dict(a.state_dict())
    torch.manual_seed(1)
    assert torch.equal(default.elbo(X8).distortion, ta.distortion)


def test_bad_first_variance_is_named():
    with pytest.raises(Exception, match="first_variance must be one of beta_tilde_2, beta_1"):
        build(first_variance="beta_2")


def test_ddpm_digits_card_states_the_option():
    import zoo

    card = zoo.get_card("ddpm-digits")
    assert card.zoo["prior"]["first_variance"] == "beta_tilde_2"
    assert zoo.load("ddpm-digits", pretrained=False).prior.schedule.first_variance == "beta_tilde_2"

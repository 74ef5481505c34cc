"""The VDM prior (plugins/diffusion/vdm.py): schedule, bound terms, the exact 8-bit decoder, latent use, the
trainer's validation split, and the shipped vdm-digits card."""
from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo.data import load_tensors

PER_PIXEL_CATEGORICAL_BPD = 2.44   # the baseline of issue 24 (re-measured in test_the_per_pixel_baseline...)


def tiny_prior(**over):
    args = {"name": "vdm", "parameterization": "categorical", "levels": 17, "hidden": 32, "blocks": 1,
            "eval_times": 4, "sample_steps": 16}
    args.update(over)
    return args


def tiny_card(**over):
    return dict(encoder="vdm-noising", decoder="vdm-decoder", prior=tiny_prior(**over),
                data_shape=(1, 8, 8), latent_shape=(1, 8, 8), data="zoo:digits")


def _model(**over):
    torch.manual_seed(0)
    return zoo.build(**tiny_card(**over)).eval()


def per_pixel_categorical_nll(train_x: torch.Tensor, test_x: torch.Tensor) -> torch.Tensor:
    """The no-latent baseline with the smoothing the VDM's level prior is seeded with (add-1/2):
    zoo.baselines.categorical_levels_nll, nats per image."""
    from zoo.baselines import categorical_levels_nll

    return categorical_levels_nll(train_x, test_x, smoothing=0.5)


def test_the_per_pixel_baseline_and_the_uniform_baseline():
    """The baselines the card compares against, re-measured: uniform over the 17 used levels is log2(17) =
    4.09 bits/dim, the per-pixel categorical fitted on the training split 2.44 (test split)."""
    train, test = load_tensors("zoo:digits", "train"), load_tensors("zoo:digits", "test")
    bpd = float(per_pixel_categorical_nll(train, test).mean()) / (64 * math.log(2))
    assert abs(bpd - 2.44) < 0.01, bpd
    assert abs(math.log2(17) - 4.09) < 0.005


def test_schedule_is_monotone_with_its_end_points_and_derivative():
    from zoo_plugins.diffusion.vdm import MonotoneSchedule

    torch.manual_seed(0)
    s = MonotoneSchedule(-10.0, 6.0, hidden=8)
    with torch.no_grad():
        for p in (s.w2, s.b2, s.w3):
            p.normal_()  # a curved shape
    t = torch.linspace(0, 1, 2001, dtype=torch.float64)
    with torch.no_grad():
        g, dg, _, _ = s.double()(t)
    assert torch.all(g[1:] > g[:-1])
    assert abs(float(g[0]) + 10) < 1e-6 and abs(float(g[-1]) - 6) < 1e-6  # the end points (float32 parameters)
    fd = (g[2:] - g[:-2]) / (t[2:] - t[:-2])
    assert torch.allclose(fd, dg[1:-1], rtol=1e-4, atol=1e-6)


def test_decoder_is_a_distribution_over_the_256_levels():
    model = _model()
    x = model.prepare(load_tensors("zoo:digits", "test")[:8])
    q = model.encode(load_tensors("zoo:digits", "test")[:8])
    obs = model.decoder(q.rsample())
    total = torch.logsumexp(obs.log_p, 1)                                  # over the 256 levels, per pixel
    assert torch.allclose(total, torch.zeros_like(total), atol=1e-5)
    lp = obs.log_prob(x)
    assert lp.shape == (8,) and torch.all(lp <= 0) and torch.all(torch.isfinite(lp))
    # a level no image uses keeps mass (the 1e-3 floor): the bound is finite for any 8-bit image
    odd = torch.full_like(x, 3 / 127.5 - 1)
    assert torch.all(torch.isfinite(obs.log_prob(odd)))


def test_with_no_network_the_bound_is_the_per_pixel_categorical():
    """With h = 0 the categorical head is the exact posterior mean of the per-pixel model, so the VDM bound
    (prior + diffusion + reconstruction) equals that model's -log P(x) up to its Monte Carlo error."""
    train, test = load_tensors("zoo:digits", "train"), load_tensors("zoo:digits", "test")[:150]
    model = _model(eval_times=16)
    model.prior.seed_levels(model.prepare(train))
    with torch.no_grad():
        bound = -model.elbo(test).elbo.double()
    base = per_pixel_categorical_nll(train, test)
    diff = bound - base
    se = float(diff.std() / math.sqrt(len(diff)))
    assert abs(float(diff.mean())) < 3 * se + 0.2, (float(diff.mean()), se)


def test_continuous_and_discrete_time_bounds_agree_for_large_T():
    train, test = load_tensors("zoo:digits", "train"), load_tensors("zoo:digits", "test")[:150]
    model = _model(eval_times=16)
    model.prior.seed_levels(model.prepare(train))
    x = model.prepare(test)
    out = {}
    with torch.no_grad():
        for T in (None, 4000):
            model.prior.timesteps = T
            torch.manual_seed(1)
            out[T] = model.prior.bound(x)[0].double()
    a, b = out[None], out[4000]
    se = math.hypot(float(a.std()), float(b.std())) / math.sqrt(len(a))
    assert abs(float(a.mean() - b.mean())) < 3 * se, (float(a.mean()), float(b.mean()), se)
    # a coarse discrete model pays for its few steps (VDM: the bound improves with T)
    model.prior.timesteps = 4
    with torch.no_grad():
        coarse = model.prior.bound(x)[0].double()
    assert float(coarse.mean()) > float(a.mean()) + 3 * se


def test_training_seeds_the_level_prior_and_sampling_gives_images():
    train = load_tensors("zoo:digits", "train")[:512]
    model = _model()
    test = load_tensors("zoo:digits", "test")[:100]
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(10):
        loss, _ = model.objective(train[torch.randint(0, len(train), (64,))])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert bool(model.prior.seeded)  # the level prior was seeded from the first batch
    model.eval()
    with torch.no_grad():
        bpd = float(model.bits_per_dim(-model.elbo(test).elbo.mean()))
    assert bpd < math.log2(17)  # better than uniform over the used levels
    images = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert images.shape == (4, 1, 8, 8) and images.min() >= 0 and images.max() <= 1
    images = model.sample(2, sampler="vdm", steps=8)
    assert images.shape == (2, 1, 8, 8)


def test_vdm_as_a_latent_prior_conforms_and_refuses_the_categorical_head():
    from zoo.testing import check_prior

    args = {"parameterization": "v", "hidden": 16, "blocks": 1, "eval_times": 2, "sample_steps": 4}
    report = check_prior("vdm", latent_shape=(2, 4, 4), data_shape=(1, 8, 8), prior_args=args,
                         encoder={"name": "conv", "channels": [8]},
                         decoder={"name": "conv", "channels": [8, 8], "likelihood": "bernoulli"}, vae_steps=2)
    assert {"shapes", "generator", "gradients", "dtype", "safetensors", "in a VAE"} <= set(report["passed"])
    assert "bound" in str(report["skipped"])
    with pytest.raises(Exception, match="categorical"):
        zoo.build(encoder="mlp", decoder="mlp", prior=tiny_prior(), data_shape=(1, 8, 8), latent_shape=(1, 8, 8))


def test_bad_arguments_are_named():
    with pytest.raises(Exception, match="parameterization"):
        _model(parameterization="score")
    with pytest.raises(Exception, match="levels"):
        _model(levels=1)
    with pytest.raises(Exception, match="timesteps"):
        _model(timesteps=0)


def test_diagnose_reports_the_bound_and_the_learned_information():
    model = _model()
    report = zoo.diagnose(model, load_tensors("zoo:digits", "test")[:64], seed=0)
    assert report["rate_kind"] == "upper bound" and report["nll_kind"] == "negative ELBO"
    assert math.isfinite(report["elbo_se"]) and report["elbo_se"] > 0
    li = report["learned_information"]
    assert len(li["information"]) == len(li["information_se"]) == li["points"]
    assert all(b >= a - 1e-9 for a, b in zip(li["information"], li["information"][1:]))  # I grows with the SNR
    assert "learned information" in zoo.format_report(report)


def test_ddpm_is_a_denoiser_too():
    from zoo import contracts as c

    torch.manual_seed(0)
    model = zoo.build(encoder="ddpm-noising", decoder="ddpm-decoder",
                      prior={"name": "ddpm", "unet": "digits-8x8", "timesteps": 20, "eval_timesteps": 4},
                      data_shape=(1, 8, 8), latent_shape=(1, 8, 8)).eval()
    assert c.has(model.prior, c.Denoiser)
    lo, hi = model.prior.log_snr_range()
    assert lo < hi
    z = torch.randn(3, 1, 8, 8)
    # at a step's own log-SNR the denoiser is exactly (z - sigma eps_theta(z, t)) / alpha
    lam = model.prior._log_snrs()[5].float()
    with torch.no_grad():
        x_hat = model.prior.denoise(z, lam.expand(3))
        eps = model.prior.unet(z, torch.full((3,), 5))
    a, s = torch.sigmoid(lam).sqrt(), torch.sigmoid(-lam).sqrt()
    assert torch.allclose(x_hat, (z - s * eps) / a, atol=1e-4)


def test_trainer_carves_a_validation_split_from_the_training_images(tmp_path):
    """--validation N: the periodic evaluations and keep_best use N training images, never the test split;
    restore_best writes the best weights."""
    result = zoo.train(zoo.build(**tiny_card()), data="zoo:digits", out=str(tmp_path / "run"), steps=4,
                       batch_size=32, eval_every=2, eval_points=50, validation=50, keep_best=True,
                       restore_best=True, sample_every=0, eval_iwae_k=1, report_to="none", progress=False)
    assert (tmp_path / "run" / "model_best.safetensors").is_file()
    assert result.model.card.zoo["results"]["best"]["step"] in (2, 4)
    with pytest.raises(Exception, match="restore_best"):
        zoo.train(zoo.build(**tiny_card()), data="zoo:digits", out=str(tmp_path / "r2"), steps=2,
                  restore_best=True, report_to="none", progress=False)


# -- the shipped card ---------------------------------------------------------------------------------

def _shipped():
    card = zoo.get_card("vdm-digits")
    if not (card.zoo.get("weights") or {}).get("packaged"):
        pytest.skip("vdm-digits has no packaged weights in this checkout")
    return zoo.load("vdm-digits")


def test_shipped_vdm_digits_loads_and_scores_a_few_images():
    model = _shipped()
    x = load_tensors("zoo:digits", "test")[:20]
    torch.manual_seed(0)
    with torch.no_grad():
        bound = -model.elbo(x).elbo
    assert float(model.bits_per_dim(bound.mean())) < PER_PIXEL_CATEGORICAL_BPD + 0.3
    images = model.sample(2, sampler="vdm", steps=16)
    assert images.shape == (2, 1, 8, 8)


def test_shipped_vdm_digits_is_below_the_per_pixel_categorical_on_the_test_split():
    """Issue 24's must-show: zoo diagnose on the packaged pixel VDM, test split, exact bound with its SE,
    below the per-pixel categorical's 2.44 bits/dim."""
    model = _shipped()
    report = zoo.diagnose(model, "zoo:digits", split="test")
    assert report["n"] == 300 and report["nll_kind"] == "negative ELBO"
    assert report["elbo_bpd"] + 2 * report["elbo_se"] / (64 * math.log(2)) < PER_PIXEL_CATEGORICAL_BPD, report["elbo_bpd"]

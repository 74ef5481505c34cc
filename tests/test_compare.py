"""I(x_0; x_t) of a Gaussian forward process (zoo.forward_information) and ``zoo compare`` on two tiny models."""
from __future__ import annotations

import json
import math

import pytest
import torch

from zoo.forward_information import information_curve


def test_curve_matches_the_closed_form_on_gaussian_data():
    """x_0 ~ N(0, I_2), x_t = x_0 + s_t eps: I(x_0; x_t) = log(1 + 1/s_t^2) (2 dims, 1/2 log(1 + SNR) each)."""
    x0 = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    snr = torch.tensor([4.0, 1.0, 0.25])
    curve = information_curve(torch.ones(3), snr.rsqrt(), x0, timesteps=[1, 2, 3], samples=8)
    for lo, se, up, s in zip(curve["lower"], curve["lower_se"], curve["upper"], snr.tolist()):
        exact = math.log1p(s)
        assert abs(lo - exact) < 0.05 + 3 * se, (lo, exact)
        assert lo <= up + 1e-9 and up > exact - 0.05
    assert not any(curve["saturated"])


def test_curve_of_a_ddpm_schedule_decreases_and_saturates_at_log_n():
    from zoo.data import load_tensors

    pytest.importorskip("sklearn")
    ab = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    x0 = load_tensors("zoo:digits", "test").double().div(127.5).sub(1).flatten(1)
    curve = information_curve(ab.sqrt(), (1 - ab).sqrt(), x0, timesteps=[1, 10, 100, 200, 300, 500, 700, 1000],
                              samples=2)
    lower, log_n = curve["lower"], math.log(300)
    assert all(a >= b - 1e-3 for a, b in zip(lower, lower[1:])), lower
    assert abs(lower[0] - log_n) < 1e-3 and curve["saturated"][:2] == [True, True]
    assert not curve["saturated"][-1] and lower[-1] < 0.01
    assert curve["identified_from_t"] in (200, 300) and curve["upper"][0] > 10 * log_n  # the bracket opens there


def test_compare_two_tiny_models_writes_the_table(tmp_path):
    pytest.importorskip("torch_fidelity")
    from tiny_runs import card_text, train_and_reload

    from zoo.compare import compare

    vae = card_text(latent=4, encoder="{name: mlp, hidden: [32]}",
                    decoder="{name: mlp, hidden: [32], likelihood: bernoulli}", prior="{name: standard-normal}")
    ddpm = card_text(latent="[1, 8, 8]", encoder="{name: ddpm-noising}", decoder="{name: ddpm-decoder}",
                     prior="{name: ddpm, unet: digits-8x8, timesteps: 20, eval_timesteps: 4}",
                     objective="{loss: simple}", steps=5)
    train_and_reload(vae, tmp_path / "vae", name="tiny-vae")
    train_and_reload(ddpm, tmp_path / "ddpm", name="tiny-ddpm")
    result = compare([str(tmp_path / "vae"), str(tmp_path / "ddpm")], "zoo:digits", tmp_path / "cmp", quality_n=64,
                     curve_samples=1)
    table = (tmp_path / "cmp" / "compare.md").read_text()
    for column in ("-ELBO bits/dim (+- SE) [test]", "rate nats", "I_q(x;z) [lower +- SE, upper] [train]",
                   "active units", "FID", "precision / recall"):
        assert column in table
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    rows = {r["model"]: r for r in saved["models"]}
    assert set(rows) == {"tiny-vae", "tiny-ddpm"} and (tmp_path / "cmp" / "compare.png").stat().st_size > 1000
    v, d = rows["tiny-vae"], rows["tiny-ddpm"]
    assert 0 <= v["mi_lower"] <= v["mi_upper"] and v["mi_log_n"] == pytest.approx(math.log(1497))
    assert v["bpd_se"] > 0 and v["fid"] > 0 and "digits-cnn" in v["quality_features"]
    assert "information_curve" not in v and d.get("mi_lower") is None
    curve = d["information_curve"]
    assert curve["saturated"][0] and curve["lower"][0] == pytest.approx(math.log(1497), abs=1e-3)
    assert d["rate_kind"] == "upper bound" and "log N" in table
    assert result["models"][0]["obtained"].startswith("loaded")

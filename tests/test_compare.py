"""I(x_0; x_t) of a Gaussian forward process (zoo.forward_information) and ``zoo compare`` on two tiny models."""
from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

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


@pytest.fixture(scope="module")
def tiny_three(tmp_path_factory):
    """Three tiny trained runs on zoo:digits: an 8-bit VAE, a DDPM (8-bit) and a binarised VAE."""
    from tiny_runs import card_text, train_and_reload

    tmp_path = tmp_path_factory.mktemp("tiny")

    vae = card_text(latent=4, encoder="{name: mlp, hidden: [32]}",
                    decoder="{name: mlp, hidden: [32], likelihood: bernoulli}", prior="{name: standard-normal}")
    vae8 = card_text(latent=4, encoder="{name: mlp, hidden: [32]}",
                     decoder="{name: mlp, hidden: [32], likelihood: {name: categorical, levels: 17}}",
                     prior="{name: standard-normal}")
    ddpm = card_text(latent="[1, 8, 8]", encoder="{name: ddpm-noising}", decoder="{name: ddpm-decoder}",
                     prior="{name: ddpm, unet: digits-8x8, timesteps: 20, eval_timesteps: 4}",
                     objective="{loss: simple}", steps=5)
    train_and_reload(vae, tmp_path / "vae", name="tiny-vae")
    train_and_reload(vae8, tmp_path / "vae8", name="tiny-vae8")
    train_and_reload(ddpm, tmp_path / "ddpm", name="tiny-ddpm")
    return [str(tmp_path / "vae8"), str(tmp_path / "ddpm"), str(tmp_path / "vae")]


def test_compare_puts_each_data_space_in_its_own_table_with_its_baselines(tmp_path, capsys, tiny_three):
    """An 8-bit VAE and a DDPM share the 8-bit table; the binarised VAE gets its own; each table carries the
    baselines of its space and its floor; FID is a mean +- SE over the seeds (5 by default, 2 here)."""
    pytest.importorskip("torch_fidelity")
    from zoo.compare import compare

    result = compare(tiny_three, "zoo:digits", tmp_path / "cmp", quality_n=64, curve_samples=1, seeds=2,
                     progress=True, sampler={"name": "ddim", "steps": 3})
    assert "measure tiny-ddpm" in capsys.readouterr().err  # the progress bar names its long steps
    table = (tmp_path / "cmp" / "compare.md").read_text()
    for column in ("-ELBO bits/dim (+- SE) [test]", "rate nats", "I_q(x;z) [lower +- SE, upper] [train]",
                   "active units", "FID", "precision / recall"):
        assert column in table
    spaces = {sp["kind"]: sp for sp in result["spaces"]}
    assert set(spaces) == {"8-bit", "binarised"}
    assert [r["model"] for r in spaces["8-bit"]["models"]] == ["tiny-vae8", "tiny-ddpm"]
    assert [r["model"] for r in spaces["binarised"]["models"]] == ["tiny-vae"]
    b8 = {b["model"]: b for b in spaces["8-bit"]["baselines"]}
    bb = {b["model"]: b for b in spaces["binarised"]["baselines"]}
    assert b8["uniform-levels"]["bpd"] == pytest.approx(math.log2(17)) and b8["uniform-256"]["bpd"] == 8
    assert b8["categorical-levels"]["bpd"] == pytest.approx(2.438, abs=1e-3) and b8["categorical-levels"]["bpd_se"] > 0
    assert bb["uniform"]["bpd"] == 1 and 0 < bb["bernoulli"]["bpd"] < 1
    # two tables, two figures, and no binarised row in the 8-bit table
    eight, binar = table.split("## ")[1:]
    assert "8-bit" in eight.splitlines()[0] and "binarised" in binar.splitlines()[0]
    assert "tiny-vae8" in eight and "tiny-ddpm" in eight and "| tiny-vae |" not in eight
    assert "baseline: categorical-levels" in eight and "baseline: bernoulli" in binar
    assert "baseline: bernoulli" not in eight and "| tiny-vae |" in binar
    assert len(result["figures"]) == 2 and all(Path(f).stat().st_size > 1000 for f in result["figures"])
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    rows = {r["model"]: r for r in saved["models"]}
    v, d = rows["tiny-vae"], rows["tiny-ddpm"]
    assert 0 <= v["mi_lower"] <= v["mi_upper"] and v["mi_log_n"] == pytest.approx(math.log(1497))
    assert v["bpd_se"] > 0 and "digits-cnn" in v["quality_features"]
    assert len(v["quality_seeds"]) == 2 and v["fid"] > 0 and v["fid_se"] > 0
    assert inspect.signature(compare).parameters["seeds"].default == 5
    assert "information_curve" not in v and d.get("mi_lower") is None
    curve = d["information_curve"]
    assert curve["saturated"][0] and curve["lower"][0] == pytest.approx(math.log(1497), abs=1e-3)
    assert d["rate_kind"] == "upper bound" and "log N" in table
    # what the DDPM's denoiser learned (I-MMSE), with SE, in the table's notes; none for the VAE
    li = d["learned_information"]
    assert len(li["information"]) == len(li["information_se"]) == len(li["log_snr"]) and li["nll_se"] > 0
    assert "learned_information" not in v and "learned information of tiny-ddpm: I(x; z_snr)" in eight
    assert d["quality_sampler"] == "ddim (steps=3)" and v["quality_sampler"] == "ancestral"
    # the floors are those of each space: binarised images against binarised ones, 8-bit against 8-bit
    f8, fb = spaces["8-bit"]["floor"], spaces["binarised"]["floor"]
    assert f8["floor_fid_se"] > 0 and fb["floor_fid_se"] > 0 and f8["floor_fid"] != fb["floor_fid"]
    assert result["models"][0]["obtained"].startswith("loaded")


def test_compare_one_table_refuses_a_model_on_another_space_by_name(tmp_path, tiny_three):
    from zoo.compare import compare
    from zoo.errors import UsageError

    names = tiny_three
    with pytest.raises(UsageError, match=r"refused 'tiny-vae' \(zoo:digits, 1x8x8, binarised"):
        compare(names, "zoo:digits", tmp_path / "cmp", quality_n=64, one_table=True, progress=False)
    assert not (tmp_path / "cmp" / "compare.md").exists()


def test_cli_compare_one_table_names_the_refused_model(tmp_path, tiny_three, capsys):
    from zoo.cli import main

    code = None
    try:
        code = main(["compare", *tiny_three, "--data", "zoo:digits", "--out", str(tmp_path / "cmp"), "--one-table",
                     "--quiet"])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code not in (0, None) and "refused 'tiny-vae'" in err and "tiny-vae8" not in err.split("refused")[1]

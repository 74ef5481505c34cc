"""DDPM as a latent-variable model: the bound, training, latent diffusion, bad inputs, and the
offline proof that ``zoo.load("ddpm-cifar10")`` reproduces diffusers' UNet2DModel.

The pretrained proof needs no internet: diffusers (a test extra) builds a ``UNet2DModel`` with the
``google/ddpm-cifar10-32`` configuration and random weights, saves it in the diffusers layout
(current key names as safetensors; legacy ``query/key/value/proj_attn`` names as a ``.bin`` only),
the local Hub server serves it as ``google/ddpm-cifar10-32``, and a copy of the real
``cards/ddpm-cifar10.md`` pinned to the served commit is loaded with ``zoo.load``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import zoo
from hub_fixtures import register_card_folder
from make_cards import make_card
from zoo.cards import parse_card
from zoo.errors import CardError, ShapeError, WeightsError
from zoo_plugins.diffusion.convert import DDPM_CIFAR10_DIFFUSERS_CONFIG

ROOT = Path(__file__).resolve().parents[1]
REPO = "google/ddpm-cifar10-32"
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")
LEGACY = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
CIFAR10_CONFIG = {k: v for k, v in DDPM_CIFAR10_DIFFUSERS_CONFIG.items() if not k.startswith("_")}
TINY_UNET = {"channels": 16, "channel_mult": [1, 1], "num_res_blocks": 1, "attention_resolutions": [4], "norm_groups": 8}


def tiny(T=20, K=None, schedule="linear", variance="fixed-small", latent=(1, 8, 8)):
    return make_card("ddpm-tiny", metadata={"license": "apache-2.0"}, latent={"shape": list(latent)},
                     encoder={"name": "ddpm-noising"}, decoder={"name": "ddpm-decoder"},
                     prior={"name": "ddpm", "unet": TINY_UNET, "timesteps": T, "schedule": schedule,
                            "variance": variance, "eval_timesteps": K},
                     objective={"loss": "simple"},
                     train={"steps": 3, "batch_size": 32, "lr": 0.001, "ema": 0.999, "eval_iwae_k": 1,
                            "num_samples": 4, "eval_every": 0, "sample_every": 0})


def build(card):
    from zoo.assemble import build_model

    return build_model(card)


X8 = (torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(3)) * 255).to(torch.uint8)


# -- the bound -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule, variance", [("linear", "fixed-small"), ("cosine", "fixed-large")])
def test_exact_bound_is_the_ho_decomposition(schedule, variance):
    model = build(tiny(T=20, schedule=schedule, variance=variance))
    terms = model.elbo(X8)
    e = terms.extras
    # ELBO = -(L_0 + L_T + sum_{t>=2} L_{t-1}); every KL step evaluated once
    assert torch.allclose(terms.elbo, -(terms.distortion + terms.rate))
    assert torch.allclose(terms.rate, e["L_T"] + e["L_t"][:, 1:].sum(1), rtol=1e-5)
    assert e["L_t"].shape == (6, 20) and torch.equal(e["L_t_count"][:, 1:], torch.ones(6, 19))
    assert not e["L_t_count"][:, 0].any()          # index 0 is the decoder: the distortion
    assert (e["L_t"][:, 1:] >= 0).all() and (e["L_T"] >= 0).all()
    # the distortion is the discretized-Gaussian decoder at t = 1 (a probability mass: >= 0 nats)
    assert (terms.distortion > 0).all() and model.decoder.likelihood.discrete
    assert torch.isfinite(model.bits_per_dim(-terms.elbo)).all()


def test_stratified_subsampled_bound_is_unbiased(monkeypatch):
    """With deterministic per-step terms f(i), the K-of-(T-1) stratified estimate averages to the exact sum."""
    from zoo_plugins.diffusion.ddpm import _strata

    T, K = 50, 7
    model = build(tiny(T=T, K=K))
    f = lambda t: (t.double() + 1) ** 1.5  # noqa: E731
    from zoo_plugins.diffusion import schedule as diffusion_schedule

    monkeypatch.setattr(diffusion_schedule, "step_terms", lambda s, eps, x0, t, *args: f(t).to(x0.dtype))
    x = model.prepare(X8[:2])
    q = model.encoder(x)
    exact = float(f(torch.arange(1, T)).sum())
    estimates = torch.stack([model.prior.infer(q)[1] - model.prior.infer(q)[2]["L_T"] for _ in range(3000)])
    assert estimates.std() > 0                                   # it is random ...
    assert abs(float(estimates.mean()) - exact) / exact < 0.01   # ... and unbiased
    for _ in range(20):
        idx, w = _strata(1, T - 1, K)
        assert len(idx) == K and float(w.sum()) == T - 1 and idx.min() >= 1 and idx.max() <= T - 1
        assert (idx[1:] > idx[:-1]).all()                        # one index per stratum
    model.prior.eval_timesteps = None
    assert torch.allclose(model.prior.infer(q)[1] - model.prior.infer(q)[2]["L_T"],
                          torch.full((2,), exact, dtype=torch.float32))


def test_simple_objective_and_its_unbiased_bound_estimate():
    model = build(tiny(T=20))
    loss, terms = model.objective(X8)
    assert loss.dim() == 0 and loss.requires_grad and "L_simple" in terms.extras
    loss.backward()
    assert model.prior.unet.conv_out.weight.grad is not None
    # the logged bound is a one-sample estimate of the true one: average many and compare
    torch.manual_seed(0)
    with torch.no_grad():
        est = torch.stack([model.objective(X8)[1].elbo.mean() for _ in range(600)]).mean()
        model.prior.eval_timesteps = None
        true = torch.stack([model.elbo(X8).elbo.mean() for _ in range(20)]).mean()
    assert abs(float(est - true)) / abs(float(true)) < 0.1


def test_diagnose_reports_bound_in_bpd_and_the_lt_curve(tmp_path):
    from zoo_plugins.diffusion import plot_bound_curve

    model = build(tiny(T=30, K=5))
    report = zoo.diagnose(model, X8, iwae_k=10)
    assert report["elbo_bpd"] > 0 and report["nll"] == pytest.approx(-report["elbo"])
    assert report["iwae_k"] == 0 and "no IWAE" in report["nll_estimator"]
    curve = report["L_t"]
    # each image draws its own 5 stratified steps (independent per-image bounds): together they cover more
    evaluated = sum(v is not None for v in curve)
    assert len(curve) == 30 and 5 <= evaluated <= 29 and curve[0] is None
    assert "stratified" in report["rate_estimator"] and report["L_T"] >= 0
    assert report["mutual_information"] is None and report["active_units"] is None
    text = zoo.format_report(report)
    assert "per-timestep terms L_t" in text and f"{evaluated} of 30 steps" in text
    assert plot_bound_curve(report, tmp_path / "lt.png").stat().st_size > 1000
    json.dumps(report)


# -- sampling --------------------------------------------------------------------------------------------------
def test_ancestral_and_ddim_sampling_shapes_and_reproducibility():
    from zoo_plugins.diffusion import sample

    model = build(tiny(T=20)).eval()
    a = model.sample(3, generator=torch.Generator().manual_seed(1))
    b = model.sample(3, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 1, 8, 8) and torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    for steps, eta in ((20, 0.0), (5, 0.0), (7, 1.0)):
        s = sample(model, 5, steps=steps, eta=eta, batch_size=2, progress=False,
                   generator=torch.Generator().manual_seed(2))
        assert s.shape == (5, 1, 8, 8) and torch.isfinite(s).all()
    s1 = sample(model, 2, steps=4, progress=False, generator=torch.Generator().manual_seed(5))
    s2 = sample(model, 2, steps=4, progress=False, generator=torch.Generator().manual_seed(5))
    assert torch.equal(s1, s2)


def test_cli_sample_with_ddim_steps(tmp_path, monkeypatch, capsys):
    from zoo.cli import main

    folder = tmp_path / "run"
    model = build(tiny(T=20))
    from zoo.store.run_folder import save_model

    save_model(model, folder, tiny(T=20))
    out = tmp_path / "grid.png"
    assert main(["sample", str(folder), "--n", "4", "--steps", "5", "--eta", "0.5", "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    assert main(["sample", str(folder), "--n", "2", "--steps", "21", "--out", str(out)]) == 2
    assert "1..T = 20" in capsys.readouterr().err


# -- training through the one trainer --------------------------------------------------------------------------
def test_ddpm_cards_keep_an_ema():
    for name in zoo.list_models("ddpm-*") + ["ldm-mnist"]:
        card = zoo.get_card(name)
        ema = (card.zoo.get("train") or {}).get("ema")
        assert ema and 0.99 <= ema < 1, name


def test_digits_card_trains_through_zoo_train(tmp_path):
    """The ddpm-digits card's recipe (L_simple, EMA) with a short chain and 3 steps, through zoo.train."""
    text = (ROOT / "cards" / "ddpm-digits.md").read_text()
    text = text.replace("timesteps: 1000", "timesteps: 40").replace("eval_timesteps: 100", "eval_timesteps: 4")
    card = parse_card(text, name="ddpm-digits")
    result = zoo.train(card, out=tmp_path / "run", steps=3, num_samples=4, progress=False)
    r = result.report
    assert r["weights"] == "ema" and r["elbo_bpd"] > 0 and len(r["L_t"]) == 40
    assert (tmp_path / "run" / "model_raw.safetensors").exists()
    again = zoo.load(tmp_path / "run")
    assert again.prior.num_timesteps == 40
    assert torch.equal(again.state_dict()["prior.unet.conv_out.weight"],
                       result.model.state_dict()["prior.unet.conv_out.weight"])


def test_latent_diffusion_mnist_builds_trains_and_diagnoses(tmp_path):
    result = zoo.train("ldm-mnist", out=tmp_path / "ldm", steps=2, batch_size=32, num_samples=2, progress=False)
    r = result.report
    # train.init_from: vae-mnist; train.freeze: [encoder, decoder] -- they are vae-mnist's, the prior trained
    vae = zoo.load("vae-mnist").state_dict()
    state = result.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in vae.items())
    assert result.model.prior.unet.out.weight.abs().sum() > 0     # zero-initialised output layer: it moved
    assert r["n"] == 500 and r["likelihood"] == "bernoulli"
    assert r["rate"] > 0 and r["elbo"] == pytest.approx(-(r["distortion"] + r["rate"]), rel=1e-4)
    assert r["active_units"] is not None and r["latent_dims"] == 16
    assert len(r["L_t"]) == 1000 and r["nll"] == pytest.approx(-r["elbo"])
    model = result.model
    x = torch.rand(3, 1, 28, 28)
    # rate = E_q log q + L(z) >= KL: the ELBO is finite and below the data's log-mass 0
    terms = model.elbo(x)
    assert torch.isfinite(terms.elbo).all() and (terms.elbo < 0).all()
    assert model.prior.log_prob(model.encode(x).rsample(4)).shape == (4, 3)
    from zoo_plugins.diffusion import sample

    assert sample(model, 2, steps=5, progress=False).shape == (2, 1, 28, 28)


# -- bad inputs ----------------------------------------------------------------------------------------------
def test_bad_inputs_give_clear_errors():
    from zoo_plugins.diffusion import sample

    model = build(tiny(T=20))
    with pytest.raises(ShapeError, match=r"expects images of shape \[1, 8, 8\].*got \[1, 16, 16\]"):
        model.elbo(torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match=r"timestep out of range: valid indices are 0..19"):
        model.prior.eps(torch.zeros(2, 1, 8, 8), torch.tensor([3, 20]))
    with pytest.raises(ValueError, match=r"DDIM steps must be in 1..T = 20, got 21"):
        sample(model, 1, steps=21)
    # a pretrained UNet at the wrong image size: the card names the field and both sizes
    text = (ROOT / "cards" / "ddpm-cifar10.md").read_text().replace("[3, 32, 32]", "[3, 64, 64]")
    with pytest.raises(CardError, match=r"zoo\.prior.*\[3, 32, 32\].*\[3, 64, 64\].*own image size"):
        build(parse_card(text, name="ddpm-cifar10"))
    with pytest.raises(CardError, match="variance must be 'fixed-small', 'fixed-large' or 'learned'"):
        build(tiny(variance="fixed"))
    with pytest.raises(CardError, match="ddpm-noising: latent shape must equal the data shape"):
        build(tiny(T=10, K=2, latent=(1, 4, 4)))


def test_converter_lists_unexpected_and_missing_keys():
    pytest.importorskip("diffusers")
    from zoo.store.weights import load_weights
    from zoo_plugins.diffusion import diffusers_ddpm_to_zoo

    diffusers_sd, _ = _diffusers_state()
    model = zoo.load("ddpm-cifar10", pretrained=False)
    bad = dict(diffusers_sd)
    bad["mid_block.attentions.0.rotary.weight"] = torch.zeros(1)
    bad["extra_head.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError, match=r"unexpected keys: mid_block\.attentions\.0\.rotary\.weight, extra_head\.weight"):
        diffusers_ddpm_to_zoo(bad)
    partial = {k: v for k, v in diffusers_sd.items() if k not in ("conv_out.bias", "mid_block.attentions.0.to_k.weight")}
    with pytest.raises(WeightsError, match=r"missing attention keys: mid\.attn: to_k\.weight"):
        diffusers_ddpm_to_zoo(partial)
    partial = {k: v for k, v in diffusers_sd.items() if k != "conv_out.bias"}
    with pytest.raises(WeightsError, match=r"missing keys \(1\): prior\.unet\.conv_out\.bias"):
        load_weights(model, diffusers_ddpm_to_zoo(partial), "test")


# -- the pretrained card, offline --------------------------------------------------------------------------------
_STATE: dict = {}


def _diffusers_state():
    """A seeded random diffusers UNet2DModel with google/ddpm-cifar10-32's config (built once)."""
    if not _STATE:
        from diffusers import UNet2DModel

        torch.manual_seed(1234)
        net = UNet2DModel(**CIFAR10_CONFIG).eval()
        with torch.no_grad():  # GroupNorm affine params are 1/0 at init: perturb so they matter
            for name, p in net.named_parameters():
                if "norm" in name:
                    p.add_(0.1 * torch.randn_like(p))
        _STATE["net"] = net
        _STATE["sd"] = {k: v.clone() for k, v in net.state_dict().items()}
    return _STATE["sd"], _STATE["net"]


def _serve(hub, folder: Path) -> str:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.url, token=hub.token)
    api.create_repo(REPO, exist_ok=True)
    info = api.upload_folder(repo_id=REPO, folder_path=str(folder), commit_message="diffusers layout")
    return info.oid


def _register_card(tmp_path: Path, commit: str) -> str:
    """The real cards/ddpm-cifar10.md, re-pinned to the commit the local Hub made, as an in-process plugin."""
    name = "ddpm-cifar10-local"
    text = (ROOT / "cards" / "ddpm-cifar10.md").read_text()
    text = text.replace("30eb34ce06e995c15ec349bc188a86d6bd0d5359", commit)
    folder = tmp_path / "cards"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.md").write_text(text)

    register_card_folder(folder, name)
    return name


def _check_matches_diffusers(model, net):
    assert sum(p.numel() for p in model.parameters()) == 35_746_307  # 35.7M, as published
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 3, 32, 32, generator=g)
    t = torch.tensor([0, 417, 999])
    with torch.no_grad():
        ours = model.prior.eps(x, t)
        theirs = net(x, t).sample
    assert (ours - theirs).abs().max() < 1e-5
    # and the bound runs on the loaded weights (2 sub-sampled steps to keep it quick)
    model.prior.eval_timesteps = 2
    terms = model.elbo(torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8))
    assert torch.isfinite(terms.elbo).all()


@pytest.mark.parametrize("style", ["safetensors", "legacy-bin"])
def test_zoo_load_ddpm_cifar10_equals_diffusers(local_hub, fresh_registry, tmp_path, style):
    pytest.importorskip("diffusers")
    sd, net = _diffusers_state()
    folder = tmp_path / "upload"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", **CIFAR10_CONFIG}))
    if style == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, folder / "diffusion_pytorch_model.safetensors")
    else:  # only an old-style .bin with the legacy attention names: the card's .safetensors falls back to it
        legacy = {}
        for key, value in sd.items():
            for new, old in LEGACY.items():
                key = key.replace(f".{new}.", f".{old}.")
            legacy[key] = value
        assert any(".query." in k for k in legacy)
        torch.save(legacy, folder / "diffusion_pytorch_model.bin")
    commit = _serve(local_hub, folder)
    name = _register_card(tmp_path, commit)
    model = zoo.load(name)
    assert model.info["revision"] == commit and model.info["converter"] == "diffusers-unet"
    assert model.info["weights"].endswith("safetensors" if style == "safetensors" else ".bin")
    _check_matches_diffusers(model, net)


def test_read_state_refuses_pickled_objects(tmp_path):
    from zoo.store.weights import read_state

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    path = tmp_path / "diffusion_pytorch_model.bin"
    torch.save({"conv_in.weight": torch.zeros(1), "x": Evil()}, path)
    with pytest.raises(WeightsError, match="tensors only"):
        read_state(path)

"""Performance plumbing (issue 22): what must stay true while it gets faster."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch
from torch import nn

from zoo.assemble import build_model
from zoo.cards.catalog import get_card
from zoo.errors import CardError


def _with(card, **components):
    return dataclasses.replace(card, zoo={**card.zoo, **components})


def test_absurd_sizes_refused_before_allocating_without_the_compiler_stack():
    code = """
import sys, dataclasses
from zoo.assemble import build_model
from zoo.cards.catalog import get_card
from zoo.errors import CardError
card = get_card("vae-mnist")
build_model(card, empty=True)                       # a load's build: nothing refused
for enc, how in (({"name": "mlp", "hidden": [2 ** 20, 2 ** 20]}, "declared by the component"),
                 ({"name": "conv", "channels": [2 ** 16, 2 ** 16]}, "counted before allocating")):
    try:
        build_model(dataclasses.replace(card, zoo={**card.zoo, "encoder": enc}))
    except CardError as e:
        assert "field 'zoo.encoder'" in str(e) and how in str(e) and "GiB of parameters" in str(e), e
    else:
        raise AssertionError(enc)
assert "sympy" not in sys.modules and "torch._dynamo" not in sys.modules, "the size check imported sympy"
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_allocation_guard_counts_requested_bytes_and_ignores_meta():
    from zoo.sizeguard import AllocationGuard, TooBig

    with AllocationGuard(10 ** 9) as guard:
        nn.Linear(100, 10)
        torch.zeros(5, 4, dtype=torch.float64)
        torch.empty((1000, 1000), device="meta")
    assert guard.counted == (100 * 10 + 10) * 4 + 20 * 8
    with pytest.raises(TooBig), AllocationGuard(1000):
        torch.empty(10, 100)


@pytest.mark.parametrize("channels, shape", [([32, 64, 128], (1, 28, 28)), ([8, 16], (3, 32, 32)), ([4], (1, 7, 9))])
def test_conv_output_shape_by_arithmetic_matches_a_forward(channels, shape):
    from zoo_plugins.basic.layers import _arithmetic_shape, conv_stack

    body = nn.Sequential(conv_stack(shape[0], channels), nn.Flatten())
    assert _arithmetic_shape(body, shape) == tuple(body(torch.zeros(1, *shape)).shape[1:])


@pytest.fixture(scope="module")
def warm_catalogue(tmp_path_factory):
    """An environment whose ZOO_CACHE holds the catalogue facts, written by one first ``zoo list``."""
    import os

    env = {**os.environ, "ZOO_CACHE": str(tmp_path_factory.mktemp("zoo-cache"))}
    warm = "from zoo.cli import main; import contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()): main(['list'])"
    subprocess.run([sys.executable, "-c", warm], check=True, timeout=300, env=env)
    return env


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["plugins"], ["info", "vae-mnist"], ["train", "--help"]])
def test_listing_and_help_import_no_torch(argv, warm_catalogue):
    """With the catalogue cache warm (the first ``zoo list`` on a machine builds each card once on the meta device
    to count its parameters, which needs torch; zoo.cards.listing), listing, info and help import no torch."""
    env = warm_catalogue
    code = f"""
import contextlib, io, sys
from zoo.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main({argv!r})
    except SystemExit as e:
        code = e.code
assert code == 0, code
assert "torch" not in sys.modules, "zoo {' '.join(argv)} imported torch"
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, env=env)


def test_allocator_thresholds_set_once_and_opt_out_respected():
    code = """
import os, sys
from zoo.allocator import tune_allocator
expected = sys.platform.startswith("linux") and os.environ.get("ZOO_MALLOC") != "default"
first = tune_allocator()
assert tune_allocator() is first
import ctypes
try:
    ctypes.CDLL(None).mallopt
except AttributeError:
    expected = False
assert first == expected, (first, expected)
"""
    import os

    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env={**os.environ, "ZOO_MALLOC": "default"})
    env = {**os.environ, "GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1000000"}
    out = subprocess.run([sys.executable, "-c", "from zoo.allocator import tune_allocator; print(tune_allocator())"],
                         check=True, timeout=60, env=env, capture_output=True, text=True).stdout
    assert out.strip() == "False"  # the user's own malloc tunables win


def test_training_data_prepared_once_gives_the_same_run(tmp_path):
    from zoo.training.loop import train

    torch.set_num_threads(1)
    runs, seen = {}, []
    for cached in (True, False):
        import zoo.training.loop as loop

        original = loop.TrainLoop._prepared_once
        if not cached:
            loop.TrainLoop._prepared_once = lambda self: setattr(self, "prepared_data", False)
        try:
            r = train("vae-digits", out=tmp_path / str(cached), progress=False, steps=12, device="cpu",
                      eval_iwae_k=1, eval_every=0, sample_every=0, checkpoint_every=10 ** 9,
                      callbacks=[lambda event, lp, **_: seen.append(lp.prepared_data) if event == "start" else None])
        finally:
            loop.TrainLoop._prepared_once = original
        runs[cached] = r
    assert seen == [True, False] and runs[True].report["train_steps"] == 12
    for (k, a), b in zip(runs[True].model.state_dict().items(), runs[False].model.state_dict().values()):
        assert torch.equal(a, b), k


def test_ddpm_bound_in_unet_slices_is_the_same_bound(monkeypatch):
    import zoo_plugins.diffusion.ddpm as ddpm
    from test_ddpm import X8, build, tiny

    model = build(tiny(T=12)).eval()
    calls: list[int] = []
    unet_forward = type(model.prior.unet).forward

    def counted(self, x, t):
        calls.append(x.shape[0])
        return unet_forward(self, x, t)

    monkeypatch.setattr(type(model.prior.unet), "forward", counted)
    results = {}
    for rows in (None, 4):
        monkeypatch.setattr(ddpm, "UNET_ROWS", {} if rows is None else {"cpu": rows})
        calls.clear()
        torch.manual_seed(5)
        with torch.no_grad():
            results[rows] = model.elbo(X8).elbo
        # the bound stacks 11 steps x 6 images into one call, or feeds them in slices (L_0 of the decoder: 6 rows)
        assert (66 in calls) if rows is None else (max(calls) == 6 and calls.count(4) >= 66 // 4), calls
    assert torch.allclose(results[None], results[4], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kind, hidden", [("encoder", [64, 32]), ("decoder", [32, 64])])
def test_declared_parameter_count_is_exact_for_mlps(kind, hidden):
    card = _with(get_card("vae-digits"), **{kind: {**get_card("vae-digits").zoo[kind], "hidden": hidden}})
    model = build_model(card)
    module = getattr(model, kind)
    declared = type(module).parameter_count(data_shape=card.data_shape, latent_shape=card.latent_shape,
                                            **{k: v for k, v in card.zoo[kind].items() if k != "name"})
    assert declared == sum(p.numel() for p in module.parameters())


def test_encoder_head_parametrisations():
    from zoo_plugins.basic.encoders import GaussianHead

    torch.manual_seed(0)
    heads = {p: GaussianHead(5, (3,), parametrisation=p) for p in ("log-sigma", "log-variance", "softplus")}
    for h in heads.values():
        h.load_state_dict(heads["log-sigma"].state_dict())
    feats = torch.randn(4, 5)
    u = heads["log-sigma"].linear(feats).chunk(2, -1)[1]
    assert torch.equal(heads["log-sigma"](feats).log_scale, u.clamp(min=-8))
    assert torch.allclose(heads["log-variance"](feats).variance, u.exp())             # u = log sigma^2
    assert torch.allclose(heads["softplus"](feats).stddev, torch.nn.functional.softplus(u) + 1e-4)
    card = get_card("vae-digits")
    with pytest.raises(CardError, match=r"field 'zoo.encoder'.*head 'log-var' is not one of"):
        build_model(_with(card, encoder={**card.zoo["encoder"], "head": "log-var"}))
    default = build_model(card)
    torch.manual_seed(1)
    x = torch.rand(2, *card.data_shape)
    explicit = build_model(_with(card, encoder={**card.zoo["encoder"], "head": "softplus"}))  # the default
    explicit.load_state_dict(default.state_dict())
    assert torch.equal(default.encoder(x).log_scale, explicit.encoder(x).log_scale)
    other = build_model(_with(card, encoder={**card.zoo["encoder"], "head": "log-sigma"}))
    other.load_state_dict(default.state_dict())
    assert not torch.equal(default.encoder(x).log_scale, other.encoder(x).log_scale)

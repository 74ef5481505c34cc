"""The trainer runs Adam / AdamW fused (one kernel per step) where torch has the kernel (CPU, CUDA) unless the
card's ``optimizer_args`` choose an implementation; ``{fused: false}`` is the per-tensor loop."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import zoo


def _run(tmp_path, tag: str, name: str = "vae-digits", **over):
    """Three steps of ``name``; returns ({optimiser name: torch optimiser}, the run's weights)."""
    seen = {}

    def grab(event, loop, **_):
        if event == "start":
            seen["main"] = getattr(loop.optimizer, "optimizer", loop.optimizer)
            seen.update({k: getattr(o, "optimizer", o) for k, o in loop.coupled.items()})

    zoo.train(name, out=tmp_path / tag, quiet=True, steps=3, eval_iwae_k=1, eval_every=0, sample_every=0,
              device="cpu", callbacks=[grab], **over)
    return seen, load_file(str(tmp_path / tag / "model.safetensors"))


def test_adam_is_fused_by_default_and_the_card_can_turn_it_off(tmp_path):
    default, w_default = _run(tmp_path, "default")
    assert type(default["main"]) is torch.optim.Adam and default["main"].defaults["fused"] is True
    explicit, w_explicit = _run(tmp_path, "explicit", optimizer_args={"fused": True})
    assert all(torch.equal(w_default[k], w_explicit[k]) for k in w_default)     # the default is exactly fused
    off, w_off = _run(tmp_path, "off", optimizer_args={"fused": False})
    assert not off["main"].defaults["fused"]
    # the same update rule, rounded differently: after three steps the weights agree to float32 noise
    assert all(torch.allclose(w_default[k], w_off[k], rtol=1e-4, atol=1e-6) for k in w_default)


@pytest.mark.parametrize("over, fused", [({"optimizer": "adamw"}, True),
                                         ({"optimizer_args": {"foreach": False}}, None),
                                         ({"optimizer": "sgd"}, None)])
def test_fused_only_for_adam_and_adamw_and_only_where_the_card_chose_no_implementation(tmp_path, over, fused):
    opts, _ = _run(tmp_path, "run", **over)
    assert opts["main"].defaults.get("fused") is fused


def test_a_coupled_objectives_optimiser_is_fused_too(tmp_path):
    """factorvae-digits trains its discriminator with an optimiser of its own (zoo.contracts.CoupledObjective)."""
    opts, _ = _run(tmp_path, "run", name="factorvae-digits")
    assert len(opts) == 2 and all(o.defaults["fused"] is True for o in opts.values())

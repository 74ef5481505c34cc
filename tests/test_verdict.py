"""``zoo diagnose`` ends with a plain verdict from the numbers it printed (issue 20), in the user's words."""
from __future__ import annotations

import torch

import zoo
from zoo.diagnostics import diagnose, format_report
from zoo.verdict import verdict


def test_the_verdict_follows_the_active_units():
    assert verdict({"active_units": 16, "latent_dims": 16, "rate": 4.0}) == \
        "verdict: healthy: all 16 latent units active; rate 4.00 nats"
    assert verdict({"active_units": 5, "latent_dims": 16, "rate": 2.5}).startswith(
        "verdict: partly collapsed: 5 of 16 latent units active")
    assert verdict({"active_units": 0, "latent_dims": 16, "rate": 0.01}).startswith(
        "verdict: collapsed: 0 of 16 latent units active: the decoder ignores z")
    assert verdict({"codebook_size": 64, "codebook_usage": 1}).startswith("verdict: collapsed: 1 of 64 codebook")
    assert verdict({"codebook_size": 64, "codebook_usage": 30}).startswith("verdict: partly collapsed: 30 of 64")
    assert verdict({"active_units": None, "active_units_note": "not measured"}) == "verdict: not judged (not measured)"
    assert verdict({"active_units": None, "active_units_note": "not applicable: the encoder is a fixed noising "
                    "process"}) == "verdict: no collapse to judge: the encoder is a fixed noising process"


def _report(model):
    return format_report(diagnose(model, "zoo:digits", iwae_k=0, max_points=200))


def test_diagnose_reports_healthy_and_collapsed_models():
    model = zoo.load("vae-digits")
    text = _report(model)
    assert text.splitlines()[-1].startswith("verdict: healthy: all 16 latent units active")
    with torch.no_grad():                          # an encoder that ignores x: q(z|x) the same for every image
        for p in model.encoder.parameters():
            p.zero_()
    text = _report(model)
    assert "active units (Cov_x E_q[z_d] > 0.01): 0 / 16" in text
    assert text.splitlines()[-1].startswith("verdict: collapsed: 0 of 16 latent units active")
    assert "cross_log_prob" not in text and "/cat" not in text

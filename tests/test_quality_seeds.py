"""FID / precision / recall over sample seeds (zoo.quality.seeds): mean +- SE, and the floor of the model's space."""
from __future__ import annotations

import statistics

import pytest
import torch

import zoo


def test_mean_se():
    from zoo.quality.seeds import mean_se

    m, se = mean_se([1.0, 2.0, 3.0, 6.0])
    assert m == 3.0 and se == pytest.approx(statistics.stdev([1, 2, 3, 6]) / 2)
    assert mean_se([4.0]) == (4.0, None)


def test_fid_of_vae_digits_over_seeds_with_the_binarised_floor():
    """Issue 19: FID of vae-digits with its SE over seeds; the floor beside it is the binarised one."""
    pytest.importorskip("torch_fidelity")
    from zoo.data import load_tensors
    from zoo.quality.evaluate import resolve_features
    from zoo.quality.fidelity import fidelity_metrics
    from zoo.quality.seeds import evaluate_over_seeds

    model = zoo.load("vae-digits", pretrained=True)
    report = evaluate_over_seeds(model, "zoo:digits", n=100, seeds=5, metrics=("fid", "prc"))
    assert len(report["seeds"]) == 5 and len(report["fid_draws"]) == 5 and len(set(report["fid_draws"])) == 5
    assert report["fid"] == pytest.approx(statistics.mean(report["fid_draws"]))
    assert report["fid_se"] == pytest.approx(statistics.stdev(report["fid_draws"]) / 5 ** 0.5) and report["fid_se"] > 0
    assert report["precision_se"] is not None and "binarised" in report["data_space"]
    # the floor, recomputed by hand: binarised test images against random binarised training subsets
    feats = resolve_features(None, "zoo:digits")

    def floor(binarise: bool) -> list[float]:
        test = load_tensors("zoo:digits", "test")[:100]
        train = load_tensors("zoo:digits", "train")
        if binarise:
            test, train = [((x.float() / 255 > 0.5) * 255).to(torch.uint8) for x in (test, train)]
        out = []
        for s in report["floor_seeds"]:
            pick = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(s))[:100]]
            out.append(fidelity_metrics(pick, test, features=feats, metrics=("fid",))["fid"])
        return out

    binarised = floor(True)
    assert report["floor_fid_draws"] == pytest.approx(binarised, rel=1e-6)
    assert report["floor_fid"] == pytest.approx(statistics.mean(binarised)) and report["floor_fid_se"] > 0
    eight_bit = statistics.mean(floor(False))
    assert abs(eight_bit - report["floor_fid"]) > 3 * report["floor_fid_se"]  # not the 8-bit floor


def test_zoo_evaluate_prints_mean_se_and_the_floor(capsys):
    pytest.importorskip("torch_fidelity")
    from zoo.cli import main

    main(["evaluate", "vae-digits", "--n", "64", "--seeds", "3", "--metrics", "fid"])
    out = capsys.readouterr().out
    assert "3 seed(s)" in out and "binarised" in out
    line = next(l for l in out.splitlines() if l.strip().startswith("FID"))
    assert line.count("+-") == 2  # the model's mean +- SE, then the floor's

"""The learned-information curve (zoo.denoiser_information): I-MMSE on a closed-form Gaussian, and a
trained vs an untrained diffusion model."""
from __future__ import annotations

import math

import pytest
import torch

from zoo.denoiser_information import information_curve, model_information


def _gaussian(n=2000, d=4, s=0.7, seed=123):  # not the curve's noise seed (0): x and eps must be independent
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) * s

    def bayes(z, log_snr):
        # x ~ N(0, s^2 I), z = alpha x + sigma eps:  E[x|z] = alpha s^2 z / (alpha^2 s^2 + sigma^2)
        a2 = torch.sigmoid(log_snr)[:, None]
        return a2.sqrt() * s ** 2 * z / (a2 * s ** 2 + (1 - a2))
    return x, bayes


def test_gaussian_information_matches_the_closed_form_within_its_se():
    """x ~ N(0, s^2 I_d): mmse(snr) = d s^2 / (1 + snr s^2) and I(x; z_snr) = d/2 log(1 + snr s^2)."""
    s, d = 0.7, 4
    x, bayes = _gaussian(s=s, d=d)
    out = information_curve(bayes, x, -6.0, 8.0, points=64, discrete=False)
    checked = 0
    for lam, est, se, mse, mse_se in zip(out["log_snr"], out["information"], out["information_se"], out["mse"],
                                         out["mse_se"]):
        snr = math.exp(lam)
        true_i = 0.5 * d * math.log1p(snr * s ** 2)
        true_mse = d * s ** 2 / (1 + snr * s ** 2)
        assert abs(est - true_i) < 3 * se + 0.01 * true_i + 1e-3, (lam, est, true_i, se)
        assert abs(mse - true_mse) < 4 * mse_se, (lam, mse, true_mse, mse_se)
        checked += 1
    assert checked == 64 and out["information_top"] > 5.0  # a non-trivial range was checked
    # Kong et al.'s continuous formula: the mean of -log p(x) is the entropy d/2 log(2 pi e s^2)
    true_h = 0.5 * d * math.log(2 * math.pi * math.e * s ** 2)
    assert abs(out["nll"] - true_h) < 3 * out["nll_se"] + 0.01, (out["nll"], true_h, out["nll_se"])


def test_a_worse_denoiser_gives_a_different_curve_and_bad_input_is_refused():
    x, bayes = _gaussian(n=500)
    good = information_curve(bayes, x, -4.0, 6.0, points=16)
    zero = information_curve(lambda z, l: torch.zeros_like(z), x, -4.0, 6.0, points=16)
    gap = zero["information_top"] - good["information_top"]
    assert gap > 5 * math.hypot(zero["information_top_se"], good["information_top_se"])
    with pytest.raises(ValueError, match="increasing"):
        information_curve(bayes, x, 3.0, 1.0)
    with pytest.raises(ValueError, match="at least 2"):
        information_curve(bayes, x[:1], -1.0, 1.0)


def _tiny_vdm(steps: int):
    import zoo
    from zoo.data import load_tensors
    torch.manual_seed(0)
    model = zoo.build(encoder="vdm-noising", decoder="vdm-decoder", data_shape=(1, 8, 8), latent_shape=(1, 8, 8),
                      prior={"name": "vdm", "parameterization": "categorical", "levels": 17, "hidden": 32,
                             "blocks": 1, "eval_times": 4})
    x = load_tensors("zoo:digits", "train")[:512]
    if steps:
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        model.train()
        for i in range(steps):
            loss, _ = model.objective(x[torch.randint(0, len(x), (64,))])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model


def test_a_trained_and_an_untrained_model_give_curves_that_differ_beyond_their_se():
    """The curve depends on the weights (unlike the forward process's I(x_0; x_t)): a VDM trained for a few
    steps (15 Adam steps, its level prior seeded from the first batch) against the same architecture untrained, on the same test images."""
    from zoo.data import load_tensors

    x = load_tensors("zoo:digits", "test")[:100]
    curves = [model_information(_tiny_vdm(steps), x, points=8, seed=3) for steps in (0, 15)]
    untrained, trained = curves
    diffs = [(u - t) / math.hypot(su, st) for u, t, su, st in zip(untrained["information"], trained["information"],
                                                                  untrained["information_se"], trained["information_se"])]
    assert max(diffs) > 3.0, diffs
    # the discrete-data -log p(x) estimate of the trained model is below the untrained one's (17 levels: log 17 per pixel)
    assert trained["nll"] + 3 * trained["nll_se"] < untrained["nll"]
    assert untrained["variable"].startswith("the data x")

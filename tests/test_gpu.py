"""GPU runs (opt in: pytest -m gpu; skipped without CUDA).  Not run in CI, which has no GPU."""
from __future__ import annotations

import pytest
import torch

import zoo
from zoo.training.loop import train

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("precision", ["no", "bf16", "fp16"])
def test_training_on_cuda_with_mixed_precision_and_resume(tmp_path, precision):
    out = tmp_path / precision
    first = train("vae-digits", out=out, steps=20, checkpoint_every=10, precision=precision, device="cuda",
                  progress=False, eval_iwae_k=2)
    assert first.model.device.type == "cuda"
    assert torch.isfinite(torch.tensor(first.report["elbo"]))
    again = train("vae-digits", out=out, steps=30, precision=precision, device="cuda", progress=False,
                  eval_iwae_k=2, resume=True)
    assert again.report["elbo"] > first.report["elbo"] - 50


def test_loaded_model_runs_on_cuda():
    model = zoo.load("vae-cifar10", pretrained=False, device="cuda")
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    terms = model.elbo(x)
    assert terms.elbo.device.type == "cuda" and torch.isfinite(terms.elbo).all()
    assert model.sample(2).device.type == "cuda"

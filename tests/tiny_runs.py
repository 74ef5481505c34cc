"""Tiny seeded training runs for the family tests: a card text -> the trainer -> the reloaded model."""
from __future__ import annotations

from pathlib import Path

import torch

import zoo
from zoo.cards import parse_card
from zoo.training.loop import train

TRAIN = ("train: {steps: STEPS, batch_size: 64, lr: 0.003, seed: 0, eval_iwae_k: 4, log_every: 10, "
         "eval_every: 0, sample_every: 0, num_samples: 4, checkpoint_every: 1000}")


def card_text(*, latent, encoder, decoder, prior, objective="{beta: 1.0}", data="zoo:digits", shape="[1, 8, 8]",
              steps=30) -> str:
    return (f"---\nzoo:\n  data: {{source: {data}, shape: {shape}}}\n  latent: {{shape: {latent}}}\n"
            f"  encoder: {encoder}\n  decoder: {decoder}\n  prior: {prior}\n  objective: {objective}\n"
            f"  {TRAIN.replace('STEPS', str(steps))}\n---\n")


def train_and_reload(text: str, out: Path, name: str = "tiny"):
    """Train the card for its few steps into ``out``; return (run result, the model reloaded from ``out``).

    The reloaded model must compute the same ELBO as the trained one (same seed): the weights,
    buffers included, went through model.safetensors."""
    result = train(parse_card(text, name=name), out=out, progress=False)
    loaded = zoo.load(out)
    x = torch.rand(6, *loaded.data_shape)
    result.model.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        a = result.model.elbo(x).elbo
        torch.manual_seed(1)
        b = loaded.elbo(x).elbo
    assert torch.allclose(a, b, atol=1e-5), (a, b)
    return result, loaded

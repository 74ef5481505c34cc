"""Per-pixel baselines (no latent at all) on a built-in data set's test split, fitted on its training split.

    python tools/pixel_baselines.py zoo:mnist-5k     # binarised as the Bernoulli VAEs see it (vae-mnist's prepare)
    python tools/pixel_baselines.py zoo:digits       # 8-bit

* ``bernoulli_baseline``: independent Bernoulli per pixel, p_d = (ones_d + a) / (N + 2a) on the training
  split (add-a smoothing, a = 0.5, the Krichevsky-Trofimov estimate), -log p(x) summed over pixels (nats).
* ``categorical_baseline``: independent 256-way categorical per pixel, add-a counts (a = 0.5) over the levels the
  training split uses, so a used level is never impossible (an unused level in a test image is refused).
* ``uniform_levels``: uniform over the L levels the training split uses, D log L nats.

Mean over the test images with the standard error; bits/dim = nats / (D ln 2).
"""
from __future__ import annotations

import math
import sys

import torch


def _stats(nll: torch.Tensor, dims: int) -> dict:
    nll = nll.double()
    return {"nats": float(nll.mean()), "se": float(nll.std() / math.sqrt(len(nll))),
            "bits_per_dim": float(nll.mean() / (dims * math.log(2)))}


def bernoulli_baseline(train: torch.Tensor, test: torch.Tensor, a: float = 0.5) -> dict:
    """train, test: {0, 1} tensors [N, ...]; -log p(x) of the per-pixel Bernoulli fitted on train."""
    tr, te = train.flatten(1).double(), test.flatten(1).double()
    p = (tr.sum(0) + a) / (len(tr) + 2 * a)
    nll = -(te * p.log() + (1 - te) * (1 - p).log()).sum(1)
    return _stats(nll, tr.shape[1])


def categorical_baseline(train: torch.Tensor, test: torch.Tensor, a: float = 0.5) -> dict:
    """train, test: uint8 tensors [N, ...]; per-pixel categorical over the levels train uses (add-a counts)."""
    tr, te = train.flatten(1).long(), test.flatten(1).long()
    levels = torch.unique(tr)
    if not bool(torch.isin(te, levels).all()):
        raise ValueError("the test split uses a level the training split never does: the baseline would give it 0")
    counts = torch.zeros(tr.shape[1], 256, dtype=torch.float64)
    counts.scatter_add_(1, tr.T, torch.ones_like(tr.T, dtype=torch.float64))
    counts[:, levels] += a
    logp = (counts / counts.sum(1, keepdim=True)).log()
    nll = -logp.gather(1, te.T).T.sum(1)
    return _stats(nll, tr.shape[1])


def uniform_levels(train: torch.Tensor, test: torch.Tensor) -> dict:
    """Uniform over the L levels the training split uses: D log L nats for every test image."""
    n_levels = len(torch.unique(train))
    dims = train[0].numel()
    return _stats(torch.full((len(test),), dims * math.log(n_levels)), dims) | {"levels": n_levels}


def main(spec: str) -> None:
    import zoo
    from zoo.data import load_tensors

    train, test = load_tensors(spec, "train"), load_tensors(spec, "test")
    if spec == "zoo:mnist-5k":  # the binarisation of the Bernoulli models (vae-mnist's prepare)
        vae = zoo.load("vae-mnist", pretrained=False)
        print("per-pixel Bernoulli:", bernoulli_baseline(vae.prepare(train), vae.prepare(test)))
    else:
        print("uniform over the used levels:", uniform_levels(train, test))
        print("per-pixel categorical:", categorical_baseline(train, test))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "zoo:mnist-5k")

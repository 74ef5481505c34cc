"""Measure the Gaussian encoder head's parametrisation (log-sigma / log-variance / softplus) by training quality.

    python tools/bench_head.py [--models vae-digits,mlp-mnist] [--seeds 0,1,2] [--epochs E] [--k 100]

For each model and each head (``encoder.head``, zoo_plugins.basic.encoders.GaussianHead) and seed: train with the
card's recipe (one torch thread; ``--epochs`` overrides the card's), then the test NLL by the same IWAE
estimator (k importance samples, the run's own final diagnose: an upper bound on the NLL, with its SE over
the test images).  ``mlp-mnist`` is tools/bench_train.py's model: vae-mnist with MLP networks 784-512-256-16
on zoo:mnist-5k.  Prints one row per (model, head, seed) and the mean over seeds per head, with the SE of
that mean from the seeds' spread.  Nothing is written outside a temporary folder.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile

import torch

HEADS = ("log-sigma", "log-variance", "softplus")


def card_for(name: str, head: str):
    from zoo.cards.catalog import get_card

    if name == "mlp-mnist":
        base = get_card("vae-mnist")
        enc = {"name": "mlp", "hidden": [512, 256]}
        dec = {"name": "mlp", "hidden": [256, 512], "likelihood": "bernoulli"}
    else:
        base = get_card(name)
        enc, dec = dict(base.zoo["encoder"]), base.zoo["decoder"]
    return dataclasses.replace(base, zoo={**base.zoo, "encoder": {**enc, "head": head}, "decoder": dec})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="vae-digits,mlp-mnist")
    p.add_argument("--heads", default=",".join(HEADS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, help="passes over the training data (default: the card's)")
    p.add_argument("--k", type=int, default=100, help="IWAE importance samples of the final test NLL")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from zoo.training.loop import train

    for model in args.models.split(","):
        table: dict[str, list[float]] = {}
        for head in args.heads.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                over = {"epochs": args.epochs} if args.epochs else {}
                with tempfile.TemporaryDirectory() as tmp:
                    r = train(card_for(model, head), out=f"{tmp}/run", progress=False, seed=seed, device="cpu",
                              threads=1, eval_iwae_k=args.k, sample_every=0, eval_every=0,
                              checkpoint_every=10 ** 9, **over).report
                table.setdefault(head, []).append(r["nll"])
                print(f"{model:11s} {head:12s} seed {seed}: test NLL {r['nll']:.3f} +- {r['nll_se']:.3f} nats "
                      f"(IWAE k={args.k}), ELBO {r['elbo']:.3f}, {r['train_steps']} steps "
                      f"{r['train_seconds']:.1f} s", flush=True)
        for head, v in table.items():
            se = statistics.stdev(v) / len(v) ** 0.5 if len(v) > 1 else float("nan")
            print(f"{model:11s} {head:12s} mean over {len(v)} seeds: NLL {statistics.mean(v):.3f} +- {se:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

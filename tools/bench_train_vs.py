"""Benchmark: the same MLP VAE trained by latent-zoo, by a bare PyTorch loop and (if installed) by pythae 0.1.2,
each in its own fresh process, then scored by one test-NLL estimator.

    python tools/bench_train_vs.py [--rounds 3] [--epochs 10] [--k 500] [--zoo-heads default,log-variance]

Model and recipe (tools/bench_train.py's): Bernoulli VAE on binarised ``zoo:mnist-5k`` (4500 train / 500 test
images, x > 0.5), encoder 784-512-256 -> Gaussian over 16 dims, decoder 16-256-512-784 (ReLU), standard-normal
prior, Adam lr 1e-3, batch 128, ``--epochs`` passes, one torch thread in every process.

    zoo      zoo.train(card) with the card's defaults; one side per ``--zoo-heads`` entry (encoder.head; ``default``:
             none given, the trainer's and the head's defaults)
    bare     the loop users write: nn.Sequential networks, a log-variance head, BCE-with-logits + closed-form KL
    pythae   pythae.models.VAE (reconstruction_loss="bce") with the same networks (a sigmoid output, as pythae
             wants) under pythae's own TrainingPipeline.  Not installed by default; add it to a venv that
             already has torch with:  pip install --no-deps pythae==0.1.2 && pip install "pydantic<3" imageio

steps/s: optimiser steps over the seconds of each library's training call (zoo: its loop, ``train_seconds``; bare:
the loop; pythae: ``pipeline(train_data=...)``), by wall clock and by process CPU time (robust to other jobs
on a shared machine).  NLL: the importance-weighted bound (Burda et al. 2015) with ``--k`` samples from each
model's own q(z|x), the same code for all sides (an upper bound on the NLL, nats; SE over the 500 test images).
Rounds run the sides in a rotating order (seed = round), and the medians / means over rounds are printed with
zoo / pythae and zoo / bare ratios.  Goals (issue 22): zoo >= 1.2x pythae's steps/s; NLL no worse than bare's
beyond its SE.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

HIDDEN_ENC, HIDDEN_DEC, LATENT, BATCH, LR = (512, 256), (256, 512), 16, 128, 1e-3


def data():
    from zoo.data import load_tensors

    train = (load_tensors("zoo:mnist-5k", "train").float() / 255 > 0.5).float()
    test = (load_tensors("zoo:mnist-5k", "test").float() / 255 > 0.5).float()
    return train, test


def iwae_nll(encode, logits, x, k: int, chunk: int = 50) -> tuple[float, float]:
    """-log p(x) bound per image: -(logsumexp_k [log p(x|z_k) + log N(z_k; 0, I) - log q(z_k|x)] - log k)."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(1234)
    out = []
    with torch.no_grad():
        for i in range(0, len(x), chunk):
            xb = x[i:i + chunk]
            mu, log_sigma = encode(xb)
            eps = torch.randn((k, *mu.shape), generator=g)
            z = mu + log_sigma.exp() * eps                                          # [k, B, D]
            log_q = (-0.5 * eps ** 2 - log_sigma - 0.5 * math.log(2 * math.pi)).sum(-1)
            log_p = (-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi)).sum(-1)
            lg = logits(z.reshape(-1, mu.shape[-1])).reshape(k, len(xb), -1)
            log_px = -F.binary_cross_entropy_with_logits(lg, xb.reshape(1, len(xb), -1).expand_as(lg),
                                                         reduction="none").sum(-1)
            out.append(-(torch.logsumexp(log_px + log_p - log_q, 0) - math.log(k)))
    nll = torch.cat(out)
    return float(nll.mean()), float(nll.std() / len(nll) ** 0.5)


def mlp(sizes):
    from torch import nn

    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


def side_zoo(epochs: int, seed: int, k: int, head: str) -> dict:
    import dataclasses

    from zoo.cards.catalog import get_card
    from zoo.training.loop import train

    base = get_card("vae-mnist")
    encoder = {"name": "mlp", "hidden": list(HIDDEN_ENC), **({} if head == "default" else {"head": head})}
    # the trainer's defaults (the run's settings are passed below), not vae-mnist's own recipe, which may pin the
    # optimiser its weights were trained with
    card = dataclasses.replace(base, zoo={**base.zoo, "encoder": encoder, "train": {},
                                          "decoder": {"name": "mlp", "hidden": list(HIDDEN_DEC), "likelihood": "bernoulli"}})
    with tempfile.TemporaryDirectory() as tmp:
        r = train(card, out=f"{tmp}/run", progress=False, epochs=epochs, batch_size=BATCH, lr=LR, seed=seed,
                  device="cpu", threads=1, eval_iwae_k=1, eval_every=0, sample_every=0, checkpoint_every=10 ** 9)
    model = r.model.eval()
    _, test = data()

    def encode(x):
        q = model.encoder(x)
        return q.mean, q.log_scale

    nll, se = iwae_nll(encode, lambda z: model.decoder.net(z).flatten(1), test, k)
    rep = r.report
    return {"steps": rep["train_steps"], "wall": rep["train_seconds"], "cpu": rep["train_cpu_seconds"],
            "nll": nll, "nll_se": se}


def side_bare(epochs: int, seed: int, k: int) -> dict:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    train, test = data()
    enc, dec = mlp([784, *HIDDEN_ENC, 2 * LATENT]), mlp([LATENT, *HIDDEN_DEC, 784])
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=LR)
    flat = train.flatten(1)
    steps, wall, cpu = 0, time.perf_counter(), time.process_time()
    for _ in range(epochs):
        order = torch.randperm(len(flat))
        for i in range(len(flat) // BATCH):
            x = flat[order[i * BATCH:(i + 1) * BATCH]]
            mu, log_var = enc(x).chunk(2, -1)
            z = mu + (0.5 * log_var).exp() * torch.randn_like(mu)
            rec = F.binary_cross_entropy_with_logits(dec(z), x, reduction="none").sum(-1)
            kl = -0.5 * (1 + log_var - mu ** 2 - log_var.exp()).sum(-1)
            loss = (rec + kl).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu

    def encode(x):
        mu, log_var = enc(x.flatten(1)).chunk(2, -1)
        return mu, 0.5 * log_var

    nll, se = iwae_nll(encode, dec, test, k)
    return {"steps": steps, "wall": wall, "cpu": cpu, "nll": nll, "nll_se": se}


def side_pythae(epochs: int, seed: int, k: int) -> dict:
    import torch
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.net = mlp([784, *HIDDEN_ENC, 2 * LATENT])

        def forward(self, x):
            mu, log_var = self.net(x.flatten(1)).chunk(2, -1)
            return ModelOutput(embedding=mu, log_covariance=log_var)

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = mlp([LATENT, *HIDDEN_DEC, 784])

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)).reshape(-1, 1, 28, 28))

    torch.manual_seed(seed)
    train, test = data()
    model = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=LATENT, reconstruction_loss="bce"),
                encoder=Encoder(), decoder=Decoder())
    with tempfile.TemporaryDirectory() as tmp:
        config = BaseTrainerConfig(output_dir=tmp, per_device_train_batch_size=BATCH, num_epochs=epochs,
                                   learning_rate=LR, seed=seed, no_cuda=True)
        pipeline = TrainingPipeline(training_config=config, model=model)
        wall, cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            pipeline(train_data=train, eval_data=None)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    model.eval()

    def encode(x):
        mu, log_var = model.encoder.net(x.flatten(1)).chunk(2, -1)
        return mu, 0.5 * log_var

    nll, se = iwae_nll(encode, model.decoder.net, test, k)
    return {"steps": epochs * math.ceil(len(train) / BATCH), "wall": wall, "cpu": cpu, "nll": nll, "nll_se": se}


def run_side(side: str, epochs: int, seed: int, k: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--side", side, "--epochs", str(epochs), "--seed", str(seed), "--k", str(k)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--k", type=int, default=500, help="importance samples of the test NLL")
    p.add_argument("--zoo-heads", default="default")
    p.add_argument("--side", help=argparse.SUPPRESS)  # one side in this process (the driver's child)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.side:
        import torch

        torch.set_num_threads(1)
        if args.side.startswith("zoo:"):
            result = side_zoo(args.epochs, args.seed, args.k, args.side[4:])
        else:
            result = {"bare": side_bare, "pythae": side_pythae}[args.side](args.epochs, args.seed, args.k)
        print(json.dumps(result))
        return 0

    import importlib.util

    sides = [f"zoo:{h}" for h in args.zoo_heads.split(",")] + ["bare"]
    if importlib.util.find_spec("pythae") is not None:
        sides.append("pythae")
    else:
        print("pythae is not installed: zoo and bare only (pip install --no-deps pythae==0.1.2 && "
              "pip install 'pydantic<3' imageio)")
    print(f"MLP VAE 784-{'-'.join(map(str, HIDDEN_ENC))}-{LATENT} on zoo:mnist-5k, batch {BATCH}, {args.epochs} epochs, "
          f"1 thread per process, test NLL by IWAE k={args.k}; {args.rounds} rounds", flush=True)
    results: dict[str, list[dict]] = {s: [] for s in sides}
    for r in range(args.rounds):
        order = sides[r % len(sides):] + sides[:r % len(sides)]
        for side in order:
            res = run_side(side, args.epochs, r, args.k)
            results[side].append(res)
            print(f"round {r + 1} {side:17s} {res['steps'] / res['wall']:7.2f} steps/s wall "
                  f"{res['steps'] / res['cpu']:7.2f} cpu   NLL {res['nll']:.3f} +- {res['nll_se']:.3f}", flush=True)
    summary = {}
    for side, rs in results.items():
        nll = [x["nll"] for x in rs]
        summary[side] = {"wall": statistics.median(x["steps"] / x["wall"] for x in rs),
                         "cpu": statistics.median(x["steps"] / x["cpu"] for x in rs),
                         "nll": statistics.mean(nll),
                         "nll_se": (statistics.stdev(nll) / len(nll) ** 0.5 if len(nll) > 1 else rs[0]["nll_se"]),
                         "nll_se_images": statistics.mean(x["nll_se"] for x in rs)}
        s = summary[side]
        print(f"{side:17s} median {s['wall']:7.2f} steps/s wall, {s['cpu']:7.2f} cpu; NLL mean {s['nll']:.3f} "
              f"+- {s['nll_se']:.3f} (over seeds; +- {s['nll_se_images']:.3f} over test images)")
    for side in sides:
        if side.startswith("zoo:"):
            for ref in ("pythae", "bare"):
                if ref in summary:
                    z, b = summary[side], summary[ref]
                    print(f"{side} / {ref}: steps/s {z['wall'] / b['wall']:.3f} wall, {z['cpu'] / b['cpu']:.3f} cpu; "
                          f"NLL difference {z['nll'] - b['nll']:+.3f} nats")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the zoo trainer vs a bare PyTorch loop on the same MLP VAE and the same in-memory data.

    python tools/bench_train.py [--steps 300] [--rounds 5] [--batch-size 128] [--threads 1]

Both train ``vae-mnist`` with MLP networks (784-512-256-16, the card's recipe otherwise; the card itself is a
convolutional VAE since 0.1) on ``zoo:mnist-5k`` with Adam, the same global
batch and the same number of steps, in this one process, alternating bare / zoo for ``--rounds``
rounds (the machine is shared: alternating spreads background load over both).  The zoo run is
``zoo.training.loop.train`` (also ``zoo.train``) with its defaults (accelerate, metrics every 50 steps, NaN check each step on
CPU); its steps/s is the training loop only (set-up, final evaluation and saving excluded), timed
exactly like the bare loop.  Prints steps/s of each round (by wall clock and by process CPU time, which other jobs on a
shared machine do not inflate), the medians and their ratio zoo / bare.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time

import torch


def bare_loop(card, data, steps: int, batch_size: int, lr: float) -> float:
    from zoo.assemble import build_model

    torch.manual_seed(0)
    model = build_model(card).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    per_epoch = len(data) // batch_size
    step, start, cpu = 0, time.perf_counter(), time.process_time()
    while step < steps:
        order = torch.randperm(len(data), generator=g)
        for i in range(per_epoch):
            if step >= steps:
                break
            x = model.prepare(data[order[i * batch_size:(i + 1) * batch_size]])
            loss = model.elbo(x, prepared=True).loss(card.beta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    return steps / (time.perf_counter() - start), steps / (time.process_time() - cpu)


def zoo_loop(card, steps: int, batch_size: int, lr: float) -> float:
    from zoo.training.loop import train

    with tempfile.TemporaryDirectory() as tmp:
        result = train(card, out=f"{tmp}/run", progress=False, steps=steps, batch_size=batch_size, lr=lr,
                       device="cpu", eval_iwae_k=1, eval_every=0, sample_every=0, checkpoint_every=10 ** 9)
    r = result.report
    return r["train_steps"] / r["train_seconds"], r["train_steps"] / r["train_cpu_seconds"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: a shared machine)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from zoo.cards.catalog import get_card
    from zoo.data import load_tensors

    base = get_card("vae-mnist")
    card = dataclasses.replace(base, zoo={**base.zoo, "encoder": {"name": "mlp", "hidden": [512, 256]},
                                          "decoder": {"name": "mlp", "hidden": [256, 512], "likelihood": "bernoulli"}})
    data = load_tensors("zoo:mnist-5k", "train")
    lr = 1e-3
    bare_loop(card, data, 20, args.batch_size, lr)  # warm-up (allocator, kernels, imports)
    zoo_loop(card, 20, args.batch_size, lr)
    bare, zoo_ = [], []
    print(f"vae-mnist (MLP 784-512-256-16) on zoo:mnist-5k, batch {args.batch_size}, {args.steps} steps, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}")
    print("steps/s by wall clock and by process CPU time (CPU time is robust to other jobs on a shared machine)")
    for r in range(args.rounds):
        bare.append(bare_loop(card, data, args.steps, args.batch_size, lr))
        zoo_.append(zoo_loop(card, args.steps, args.batch_size, lr))
        (bw, bc), (zw, zc) = bare[-1], zoo_[-1]
        print(f"round {r + 1}: wall: bare {bw:7.2f} zoo {zw:7.2f} ratio {zw / bw:.3f}   "
              f"cpu: bare {bc:7.2f} zoo {zc:7.2f} ratio {zc / bc:.3f}", flush=True)
    for i, label in ((0, "wall"), (1, "cpu ")):
        b, z = statistics.median(x[i] for x in bare), statistics.median(x[i] for x in zoo_)
        print(f"median {label}: bare {b:.2f} steps/s, zoo {z:.2f} steps/s, zoo / bare = {z / b:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

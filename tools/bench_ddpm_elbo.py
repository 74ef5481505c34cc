"""Benchmark: the ELBO of ``ddpm-cifar10`` per image against the same UNet work on diffusers, one process.

    python tools/bench_ddpm_elbo.py [--images 8] [--timesteps 20] [--rounds 3] [--threads 1]

The model is the card's (random weights: nothing is downloaded) with ``prior.eval_timesteps`` = ``--timesteps``
(the card's 100 takes ~10 s per image on one CPU thread); diffusers' ``UNet2DModel`` holds the same weights.

    zoo        ``model.elbo(x)`` on ``--images`` uint8 images: the stratified bound (K timesteps per image, plus
               the decoder term L_0), everything included; on a CPU the bound feeds the UNet 16 rows per call in
               channels_last (``zoo_plugins.diffusion.ddpm.UNET_ROWS``)
    diffusers  the same UNet work, rows (x_t, t) the bound evaluates, through ``UNet2DModel`` with the calls
               stacked the way the bound stacks them (``MAX_ROWS // images`` timesteps x ``images`` rows per
               call, then the L_0 call): the bound's arithmetic is not timed on this side
    diffusers16  the same rows in 16-row calls (the zoo's slicing): the UNet-for-UNet comparison

The sides alternate within every round; printed: the median seconds per image of each and zoo / diffusers
(goal, issue 22: <= 0.6) and zoo / diffusers16, by wall clock and by process CPU time (robust to other jobs on
a shared machine; with one thread both should agree on an idle machine).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time

import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=8)
    p.add_argument("--timesteps", type=int, default=20, help="eval_timesteps K of the bound (the card's: 100)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from diffusers import UNet2DModel

    import zoo_plugins.diffusion.ddpm as ddpm
    from zoo.assemble import build_model
    from zoo.cards.catalog import get_card
    from zoo_plugins.diffusion.convert import DDPM_CIFAR10_DIFFUSERS_CONFIG, load_diffusers_unet

    card = get_card("ddpm-cifar10")
    card = dataclasses.replace(card, zoo={**card.zoo, "prior": {**card.zoo["prior"], "eval_timesteps": args.timesteps}})
    torch.manual_seed(0)
    ref = UNet2DModel(**{k: v for k, v in DDPM_CIFAR10_DIFFUSERS_CONFIG.items() if not k.startswith("_")}).eval()
    model = build_model(card).eval()
    load_diffusers_unet(model.prior.unet, ref.state_dict())
    b, k = args.images, args.timesteps
    x = (torch.rand(b, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)
    rows = torch.randn(b * k, 3, 32, 32)
    ts = torch.randint(1, 1000, (b * k,))
    per_call = min(max(1, ddpm.MAX_ROWS // b) * b, b * k)

    def zoo_side():
        return model.elbo(x).elbo

    def diffusers_in(call_rows: int):
        def run():
            for i in range(0, b * k, call_rows):
                ref(rows[i:i + call_rows], ts[i:i + call_rows]).sample
            for i in range(0, b, min(call_rows, b)):  # L_0: the images at t = 0
                ref(rows[i:i + min(call_rows, b)], torch.zeros(min(call_rows, b), dtype=torch.long)).sample
        return run

    sides = {"zoo": zoo_side, "diffusers": diffusers_in(per_call), "diffusers16": diffusers_in(16)}
    times: dict[str, list[tuple[float, float]]] = {s: [] for s in sides}
    print(f"ddpm-cifar10 (random weights), ELBO of {b} images with K={k} timesteps each + L_0 "
          f"({b * (k + 1)} UNet rows); diffusers' calls: {per_call} rows as stacked by the bound (MAX_ROWS "
          f"{ddpm.MAX_ROWS}); {torch.get_num_threads()} thread(s), torch {torch.__version__}", flush=True)
    with torch.inference_mode():
        zoo_side()  # warm-up
        for r in range(args.rounds):
            names = list(sides)
            for name in names[r % 3:] + names[:r % 3]:
                wall, cpu = time.perf_counter(), time.process_time()
                sides[name]()
                times[name].append(((time.perf_counter() - wall) / b, (time.process_time() - cpu) / b))
            print(f"round {r + 1}: " + "  ".join(f"{n} {times[n][-1][0]:.2f} s/image (cpu {times[n][-1][1]:.2f})"
                                                  for n in sides), flush=True)
    med = {n: [statistics.median(t[i] for t in v) for i in (0, 1)] for n, v in times.items()}
    for n, (w, c) in med.items():
        print(f"{n:12s} median {w:6.2f} s per image wall, {c:6.2f} cpu")
    for ref_name, goal in (("diffusers", " (goal <= 0.6)"), ("diffusers16", "")):
        print(f"zoo / {ref_name} = {med['zoo'][0] / med[ref_name][0]:.3f} wall, "
              f"{med['zoo'][1] / med[ref_name][1]:.3f} cpu{goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

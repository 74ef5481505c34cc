"""CPU benchmark: our DDPM UNet / DDIM sampler against diffusers, same weights, same run.

    python tools/bench_unet.py [--threads 2] [--repeats 5] [--ddim-steps 50] [--channels-last]

(a) UNet forward (google/ddpm-cifar10-32 architecture, random weights) at batch 1 and 8;
(b) DDIM-50 sampling of one 32x32 image:
    b1: zoo sampler + zoo UNet        vs  diffusers DDIMScheduler loop + diffusers UNet2DModel
    b2: zoo sampler + diffusers UNet  vs  diffusers DDIMScheduler loop + diffusers UNet2DModel
        (isolates the sampler's own overhead)
On a shared machine prefer ``--threads 1 --clock cpu`` (CPU time is not inflated by time slices
given to other processes).  Each line prints zoo time, diffusers time and zoo/diffusers (median of the repeats; the two
sides alternate within every repeat so machine load hits both alike).  All timing runs under
torch.inference_mode after a warm-up.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffusers import DDIMScheduler, UNet2DModel  # noqa: E402

from plugins.diffusion.convert import config_from_diffusers, load_diffusers_unet  # noqa: E402
from plugins.diffusion.sampling import ddim_sample  # noqa: E402
from plugins.diffusion.schedule import NoiseSchedule  # noqa: E402
from plugins.diffusion.unet import UNet  # noqa: E402

CIFAR10 = dict(
    sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256),
    layers_per_block=2, down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), attention_head_dim=None,
    norm_num_groups=32, norm_eps=1e-6, act_fn="silu", time_embedding_type="positional",
    flip_sin_to_cos=False, freq_shift=1, downsample_padding=0,
)


CLOCK = time.perf_counter


def paired(zoo: Callable[[], object], ref: Callable[[], object], repeats: int,
           warmup: int = 1) -> tuple[list[float], list[float]]:
    """Seconds of zoo() and ref() per repeat, alternating the two in every repeat."""
    with torch.inference_mode():
        for _ in range(warmup):
            zoo()
            ref()
        tz, tr = [], []
        for i in range(repeats):
            order = [(zoo, tz), (ref, tr)] if i % 2 == 0 else [(ref, tr), (zoo, tz)]
            for fn, sink in order:
                t0 = CLOCK()
                fn()
                sink.append(CLOCK() - t0)
    return tz, tr


def report(name: str, times: tuple[list[float], list[float]], goal: float) -> None:
    """Median (and min: least disturbed by other processes) times and their ratios."""
    tz, tr = times
    mz, mr = statistics.median(tz), statistics.median(tr)
    ratio, ratio_min = mz / mr, min(tz) / min(tr)
    mark = "ok" if ratio <= goal else "MISSED"
    print(f"{name:<52} zoo {mz * 1e3:8.1f} ms  diffusers {mr * 1e3:8.1f} ms  ratio {ratio:5.3f} "
          f"(min-based {ratio_min:5.3f}; goal <= {goal}: {mark})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--ddim-repeats", type=int, default=3)
    ap.add_argument("--ddim-steps", type=int, default=50)
    ap.add_argument("--channels-last", action="store_true",
                    help="also time the zoo UNet in channels_last (diffusers stays as it is)")
    ap.add_argument("--skip-ddim", action="store_true")
    ap.add_argument("--skip-forward", action="store_true")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu = process CPU time; with --threads 1 it is robust to other "
                         "processes sharing the machine")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ref = UNet2DModel(**CIFAR10).eval()
    zoo = UNet(config_from_diffusers(dict(ref.config))).eval()
    load_diffusers_unet(zoo, ref.state_dict())
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, clock {args.clock}, "
          f"{sum(p.numel() for p in zoo.parameters()) / 1e6:.1f}M parameters", flush=True)

    for batch in () if args.skip_forward else (1, 8):
        x = torch.randn(batch, 3, 32, 32)
        t = torch.randint(0, 1000, (batch,))
        with torch.inference_mode():
            err = (zoo(x, t) - ref(x, t).sample).abs().max().item()
        report(f"(a) forward batch {batch} (max|diff| {err:.1e})",
               paired(lambda: zoo(x, t), lambda: ref(x, t).sample, args.repeats), 0.85)
        if args.channels_last:
            zoo_cl = UNet(zoo.config).eval()
            zoo_cl.load_state_dict(zoo.state_dict())
            zoo_cl.to(memory_format=torch.channels_last)
            xcl = x.to(memory_format=torch.channels_last)
            report(f"(a) forward batch {batch}, zoo channels_last",
                   paired(lambda: zoo_cl(xcl, t), lambda: ref(x, t).sample, args.repeats), 0.85)

    if args.skip_ddim:
        return
    steps = args.ddim_steps
    schedule = NoiseSchedule.linear(1000)
    scheduler = DDIMScheduler(num_train_timesteps=1000)
    x_T = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))

    def ref_loop() -> torch.Tensor:
        scheduler.set_timesteps(steps)
        x = x_T
        for t in scheduler.timesteps:
            x = scheduler.step(ref(x, t).sample, t, x).prev_sample
        return x

    def zoo_with(net: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[[], torch.Tensor]:
        return lambda: ddim_sample(net, schedule, x_T.shape, num_steps=steps, x_T=x_T)

    with torch.inference_mode():
        err = (zoo_with(zoo)() - ref_loop()).abs().max().item()
    report(f"(b1) DDIM-{steps}, zoo UNet vs diffusers UNet (max|diff| {err:.1e})",
           paired(zoo_with(zoo), ref_loop, args.ddim_repeats, warmup=0), 1.0)
    with torch.inference_mode():
        err2 = (zoo_with(lambda x, t: ref(x, t).sample)() - ref_loop()).abs().max().item()
    report(f"(b2) DDIM-{steps}, both diffusers UNet (max|diff| {err2:.1e})",
           paired(zoo_with(lambda x, t: ref(x, t).sample), ref_loop, args.ddim_repeats, warmup=0), 1.0)


if __name__ == "__main__":
    main()

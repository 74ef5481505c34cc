"""Benchmark: does the data path keep up with the model?  Images per second of latent-zoo's data path
(decoding PNGs into uint8 tensors: the in-memory path with worker processes, and the stream a process
of a multi-process run decodes) against the images per second the trainer consumes for ``vae-cifar10``
and ``ddpm-cifar10`` on this machine.  A ratio above 1 means data never limits training here.

    python tools/bench_data.py --images 20000 --steps 3

The data are synthetic 32x32 RGB PNGs (CIFAR-10's format; the real set is a download) in a local
``save_to_disk`` folder, so the decode cost is the real one.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_images(folder: Path, n: int) -> Path:
    import datasets
    import numpy as np

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (256, 32, 32, 3), dtype=np.uint8)  # a few textures, shifted: PNGs of realistic size
    images = [np.roll(base[i % 256], i % 32, axis=1) for i in range(n)]
    ds = datasets.Dataset.from_dict({"image": images}, features=datasets.Features({"image": datasets.Image()}))
    datasets.DatasetDict({"train": ds, "test": ds.select(range(min(n, 500)))}).save_to_disk(str(folder))
    return folder


def data_rates(spec: str, n: int) -> dict[str, float]:
    from zoo.data import clear_memo, iterate_batches, load_dataset, load_tensors
    from zoo.data.images import decode_workers

    out = {}
    clear_memo()
    t = time.perf_counter()
    x = load_tensors(spec, "train")
    out[f"in-memory decode ({decode_workers()} worker processes)"] = len(x) / (time.perf_counter() - t)
    stream = load_dataset(spec, "train", streaming=True)
    t = time.perf_counter()
    seen = sum(len(b) for b in iterate_batches(stream, 128, shape=(3, 32, 32), keep=(0, 64)))
    # one of 2 processes: it reads every row and decodes its 64 of each global batch of 128
    out["stream, one of 2 processes (global images/s)"] = 2 * seen / (time.perf_counter() - t)
    return out


def model_rate(name: str, spec: str, steps: int, batch: int, out: Path) -> float:
    import zoo

    t0 = time.perf_counter()
    result = zoo.train(name, out=out / name, data=spec, steps=steps, batch_size=batch, progress=False,
                       eval_every=0, sample_every=0, num_samples=4, eval_points=16, eval_iwae_k=1,
                       checkpoint_every=10 ** 6, report_to="none", overwrite=True)
    return float(result.report.get("steps_per_second") or steps / (time.perf_counter() - t0)) * batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20000, help="synthetic 32x32 RGB PNGs to decode")
    parser.add_argument("--steps", type=int, default=3, help="training steps per model")
    parser.add_argument("--batch", type=int, default=32, help="global batch of the training measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = str(make_images(tmp / "images", args.images))
        data = data_rates(spec, args.images)
        models = {name: model_rate(name, spec, args.steps, args.batch, tmp)
                  for name in ("vae-cifar10", "ddpm-cifar10")}
    print(f"CPU cores: {os.cpu_count()}; {args.images} PNGs of 32x32x3")
    for what, rate in data.items():
        print(f"data path  {what:48s} {rate:10.0f} images/s")
    for name, rate in models.items():
        print(f"training   {name:48s} {rate:10.1f} images/s")
    slowest = min(data.values())
    for name, rate in models.items():
        print(f"ratio data / {name}: {slowest / rate:.1f} (the slower data path over what training consumes)")


if __name__ == "__main__":
    main()

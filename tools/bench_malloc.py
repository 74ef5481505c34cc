"""Benchmark: ``zoo train`` with the allocator thresholds of :mod:`zoo.allocator` against glibc's defaults.

    python tools/bench_malloc.py [--models vae-mnist,mlp-mnist] [--epochs 3] [--rounds 3]

Each run is a fresh ``python -m zoo.cli train NAME --epochs E --json`` process (one torch thread, no sampling or
periodic evaluation; the final evaluation runs), once as shipped (thresholds set at start-up) and once with
``ZOO_MALLOC=default`` (glibc's own behaviour), alternating within every round.  ``mlp-mnist`` is vae-mnist
with MLP networks 784-512-256-16 (tools/bench_train.py's model), written to a temporary card.  Printed per
model: median training-loop seconds (wall and CPU, from the run's report), the process's peak resident memory
and minor page faults (GNU time), and tuned / default ratios.  Linux with glibc and /usr/bin/time only.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mlp_card(folder: Path) -> str:
    text = (ROOT / "cards" / "vae-mnist.md").read_text()
    text = text.replace("encoder: {name: conv, channels: [32, 64]}", "encoder: {name: mlp, hidden: [512, 256]}")
    text = text.replace("decoder: {name: conv, channels: [64, 32, 16], likelihood: bernoulli}",
                        "decoder: {name: mlp, hidden: [256, 512], likelihood: bernoulli}")
    assert "name: mlp, hidden: [256, 512]" in text, "cards/vae-mnist.md changed: update tools/bench_malloc.py"
    path = folder / "mlp-mnist.md"
    path.write_text(text)
    return str(path)


def run(name: str, epochs: int, tuned: bool, folder: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("ZOO_MALLOC", None)
    if not tuned:
        env["ZOO_MALLOC"] = "default"
    out = folder / f"run-{tuned}"
    stats = folder / "time.txt"
    cmd = ["/usr/bin/time", "-o", str(stats), "-f", "%M %R", sys.executable, "-m", "zoo.cli", "train", name,
           "--out", str(out), "--overwrite", "--epochs", str(epochs), "--threads", "1", "--eval-every", "0",
           "--sample-every", "0", "--quiet", "--json"]
    report = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)
    rss_kb, faults = stats.read_text().split()[-2:]
    return {"wall": report["train_seconds"], "cpu": report["train_cpu_seconds"], "rss_mb": int(rss_kb) / 1024,
            "faults": int(faults)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="vae-mnist,mlp-mnist")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-malloc-") as tmp:
        folder = Path(tmp)
        for model in args.models.split(","):
            name = mlp_card(folder) if model == "mlp-mnist" else model
            res: dict[bool, list[dict]] = {True: [], False: []}
            for r in range(args.rounds):
                for tuned in ((True, False) if r % 2 == 0 else (False, True)):
                    res[tuned].append(run(name, args.epochs, tuned, folder))
                print(f"{model} round {r + 1}: " + "  ".join(
                    f"{'tuned' if t else 'default'} {res[t][-1]['wall']:.2f} s (cpu {res[t][-1]['cpu']:.2f}) "
                    f"{res[t][-1]['rss_mb']:.0f} MB {res[t][-1]['faults']} faults" for t in (True, False)), flush=True)
            med = {t: {k: statistics.median(x[k] for x in v) for k in v[0]} for t, v in res.items()}
            t, d = med[True], med[False]
            print(f"{model}: {args.epochs} epochs, median of {args.rounds}: loop {t['wall']:.2f} / {d['wall']:.2f} s wall "
                  f"= {t['wall'] / d['wall']:.3f}, cpu {t['cpu']:.2f} / {d['cpu']:.2f} s = {t['cpu'] / d['cpu']:.3f}; "
                  f"peak RSS {t['rss_mb']:.0f} / {d['rss_mb']:.0f} MB ({t['rss_mb'] - d['rss_mb']:+.0f} MB); "
                  f"minor faults {t['faults']:.0f} / {d['faults']:.0f}  (tuned / default)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

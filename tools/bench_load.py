"""Benchmark: ``zoo.load("ddpm-cifar10")`` against diffusers' ``UNet2DModel.from_pretrained`` from a warm
Hugging Face cache, each a whole fresh Python process (interpreter start, imports, build, read, convert).

    python tools/bench_load.py [--repeats 5]

No network: the HF cache is pre-populated in a temporary folder with the diffusers layout of
``google/ddpm-cifar10-32`` (config.json + diffusion_pytorch_model.safetensors; a UNet2DModel with
the published configuration and random weights) under the commit the card pins, and both sides
run with ``HF_HUB_OFFLINE=1``, so each reads the same cached files.  The two commands alternate
within every repeat (machine load hits both alike); printed: median wall seconds of each and
zoo / diffusers.  Goal: <= 0.5.  For context it also times ``python -c "import torch"`` and
``python -c "import zoo"``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ZOO = 'import zoo; m = zoo.load("ddpm-cifar10"); assert m.prior.unet.conv_in.weight.shape[0] == 128'
DIFFUSERS = ('from diffusers import UNet2DModel; m = UNet2DModel.from_pretrained("google/ddpm-cifar10-32", '
             'revision="{rev}"); m.eval(); assert m.conv_in.weight.shape[0] == 128')


def populate_cache(cache: Path, repo: str, revision: str) -> None:
    """Write the Hub cache layout (blobs named by their hash, snapshot symlinks, refs) for ``repo@revision``."""
    import torch
    from diffusers import UNet2DModel
    from safetensors.torch import save_file

    from zoo_plugins.diffusion.convert import DDPM_CIFAR10_DIFFUSERS_CONFIG

    torch.manual_seed(0)
    net = UNet2DModel(**{k: v for k, v in DDPM_CIFAR10_DIFFUSERS_CONFIG.items() if not k.startswith("_")})
    files = {"config.json": (json.dumps(DDPM_CIFAR10_DIFFUSERS_CONFIG, indent=2) + "\n").encode()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.safetensors"
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
        files["diffusion_pytorch_model.safetensors"] = path.read_bytes()
    base = cache / f"models--{repo.replace('/', '--')}"
    (base / "blobs").mkdir(parents=True, exist_ok=True)
    (base / "snapshots" / revision).mkdir(parents=True, exist_ok=True)
    (base / "refs").mkdir(exist_ok=True)
    for name, data in files.items():
        if name.endswith(".safetensors"):  # LFS file: blob named by its sha256
            blob = hashlib.sha256(data).hexdigest()
        else:                              # regular file: git blob sha1
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        (base / "blobs" / blob).write_bytes(data)
        link = base / "snapshots" / revision / name
        if not link.exists():
            link.symlink_to(Path("..") / ".." / "blobs" / blob)
    (base / "refs" / "main").write_text(revision)


def timed(code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from zoo.cards.catalog import get_card

    weights = get_card("ddpm-cifar10").zoo["weights"]
    with tempfile.TemporaryDirectory(prefix="bench-load-") as home:
        cache = Path(home) / "hub"
        populate_cache(cache, weights["repo"], weights["revision"])
        env = {**os.environ, "HF_HOME": home, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
               "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        diffusers_code = DIFFUSERS.format(rev=weights["revision"])
        timed(ZOO, env), timed(diffusers_code, env)  # warm the OS file cache and .pyc files
        ours, theirs, torch_only, zoo_import = [], [], [], []
        for _ in range(args.repeats):
            ours.append(timed(ZOO, env))
            theirs.append(timed(diffusers_code, env))
            torch_only.append(timed("import torch", env))
            zoo_import.append(timed("import zoo", env))
        z, d = statistics.median(ours), statistics.median(theirs)
        print(f"python -c 'import zoo'                      {statistics.median(zoo_import):6.2f} s")
        print(f"python -c 'import torch'                    {statistics.median(torch_only):6.2f} s  (shared floor of both)")
        print(f"zoo.load('ddpm-cifar10'), whole process     {z:6.2f} s")
        print(f"UNet2DModel.from_pretrained, whole process  {d:6.2f} s")
        print(f"zoo / diffusers = {z / d:.2f}  (median of {args.repeats}; goal <= 0.5)")


if __name__ == "__main__":
    main()

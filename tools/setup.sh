#!/usr/bin/env bash
# Set up a fresh machine: a virtual environment in .venv with the CPU-capable torch/torchvision
# pair first (so pip never pulls another torch), then latent-zoo with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip setuptools wheel
python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
python -m pip install -q -e ".[test]"
python -c "import zoo, torch; print(f'latent-zoo {zoo.__version__} ready (torch {torch.__version__})')"

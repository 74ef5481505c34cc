#!/usr/bin/env bash
# Set up a fresh machine: a virtual environment in .venv with the CPU-capable torch/torchvision
# pair first (so pip never pulls another torch), then latent-zoo with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
# pip.conf on these machines names local indexes that may be absent: drop those warnings only
quiet_pip() { python -m pip install -q "$@" 2> >(grep -v "^WARNING: Location 'file:" >&2); }
quiet_pip --upgrade pip setuptools wheel
quiet_pip "torch==2.14.1" "torchvision==0.29.1"
quiet_pip -e ".[test]"
python -c "import zoo, torch; print(f'latent-zoo {zoo.__version__} ready (torch {torch.__version__})')"

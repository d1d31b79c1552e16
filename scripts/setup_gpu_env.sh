#!/usr/bin/env bash
# `make setup-gpu`: the GPU virtual environment (.venv-gpu) from requirements/gpu.lock.txt, idempotently.
# One stack for SFT (LLaMA-Factory 0.9.5 + DeepSpeed) and RL (verl 0.9.1 + vLLM 0.28.0), torch 2.13.0
# (CUDA 13 wheels from PyPI). Needs Linux x86_64, Python 3.11 and an NVIDIA driver for CUDA 13 to *run*;
# installing works anywhere. flash-attn is optional (recipes/datamind-7b/README.md, "Attention").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pip_logged.sh

VENV=${DATAMIND_GPU_VENV:-.venv-gpu}
PY=${PYTHON:-python3.11}
STAMP="$VENV/.datamind-installed"
want=$(cat requirements/gpu.lock.txt setup.cfg pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
start=$(date +%s)
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade --progress-bar off pip
echo "[setup-gpu] installing requirements/gpu.lock.txt (~12 GB with torch, CUDA libraries and vLLM)"
pip_logged setup-gpu "$VENV/pip-install.log" "$VENV/bin/python" -m pip install --progress-bar off -r requirements/gpu.lock.txt
"$VENV/bin/python" -m pip install --progress-bar off --no-deps --no-build-isolation -e . | tail -n 1
"$VENV/bin/python" -m pip check
echo "$want" > "$STAMP"
echo "[setup-gpu] done in $(( $(date +%s) - start )) s"

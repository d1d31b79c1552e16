#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv, idempotently.
#
# The CPU environment is installed from requirements/cpu.lock.txt, a full pin set that resolves
# verl 0.9.1 + LLaMA-Factory 0.9.5 + transformers 5.5.4 with torch 2.14.1, torchvision 0.29.1
# and torchaudio 2.11.0 (all importable on CPU: no stubbed modules, `pip check` clean).
# GPU machines: see README.md ("GPU environment").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pip_logged.sh

VENV=${DATAMIND_VENV:-.venv}
PY=${PYTHON:-python3.11}
STAMP="$VENV/.datamind-installed"
want=$(cat requirements/cpu.lock.txt setup.cfg pyproject.toml | sha256sum | cut -c1-16)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/datamind-ext" ]; then
  exit 0
fi

start=$(date +%s)
echo "[setup] creating the virtual environment in $VENV (python: $($PY --version))"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade --progress-bar off pip
echo "[setup] installing the pinned environment (requirements/cpu.lock.txt, ~7 GB with torch)"
pip_logged setup "$VENV/pip-install.log" "$VENV/bin/python" -m pip install --progress-bar off -r requirements/cpu.lock.txt
echo "[setup] installing datamind-ext (editable)"
"$VENV/bin/python" -m pip install --progress-bar off --no-deps --no-build-isolation -e . | tail -n 1
"$VENV/bin/python" -m pip check
echo "$want" > "$STAMP"
echo "[setup] done in $(( $(date +%s) - start )) s"

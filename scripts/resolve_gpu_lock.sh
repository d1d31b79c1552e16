#!/usr/bin/env bash
# Regenerate requirements/gpu.lock.txt: pip's resolver over scripts/gpu_lock.in against PyPI (no GPU needed,
# this machine's local wheel stores and torch caps ignored), one name==version line per resolved package.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
tmp=$(mktemp -d)
"$PY" -m venv "$tmp/venv" && "$tmp/venv/bin/python" -m pip install -q --upgrade pip
env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null \
  "$tmp/venv/bin/pip" install --dry-run --ignore-installed --quiet --report "$tmp/report.json" -r scripts/gpu_lock.in
{ sed -n '/^#/p' requirements/gpu.lock.txt
  "$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print("\n".join(sorted((f"{i["metadata"]["name"]}=={i["metadata"]["version"]}" for i in r["install"]), key=str.lower)))' "$tmp/report.json"
} > "$tmp/lock" && mv "$tmp/lock" requirements/gpu.lock.txt
rm -rf "$tmp"
echo "requirements/gpu.lock.txt: $(grep -c '==' requirements/gpu.lock.txt) pins"

#!/usr/bin/env bash
# RL stage of DataMind-14B on ONE node: the datamind-7b script with this recipe's rl.yaml.
#   bash recipes/datamind-14b/run_rl.sh RUN_DIR [extra hydra overrides...]
RECIPE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) exec bash "$(dirname "${BASH_SOURCE[0]}")/../datamind-7b/run_rl.sh" "$@"

#!/usr/bin/env bash
# RL stage of DataMind-14B on a multi-node Ray cluster: the datamind-7b script with this recipe's rl.yaml.
#   head:     bash recipes/datamind-14b/run_rl_multinode.sh head   RUN_DIR NNODES [overrides...]
#   workers:  bash recipes/datamind-14b/run_rl_multinode.sh worker HEAD_IP:6379
RECIPE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) exec bash "$(dirname "${BASH_SOURCE[0]}")/../datamind-7b/run_rl_multinode.sh" "$@"

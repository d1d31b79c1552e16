#!/usr/bin/env bash
# RL stage of a DataMind recipe on ONE node (8 GPUs): stock verl main_ppo with our plugin components.
# Usage (from the repository root):
#   bash recipes/datamind-7b/run_rl.sh RUN_DIR [extra hydra overrides...]
# RUN_DIR holds the earlier stages' outputs (datamind-ext run recipes/datamind-7b --to sft).
set -euo pipefail
RUN_DIR=${1:?usage: run_rl.sh RUN_DIR [overrides...]}; shift
# RECIPE_DIR may be set by another recipe reusing this script (datamind-14b does).
RECIPE_DIR=${RECIPE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
NGPUS=${NGPUS:-8}
mkdir -p "$RUN_DIR/rl"
# logs into the run folder, as `datamind-ext run` does: tensorboard (verl reads TENSORBOARD_DIR), wandb if enabled
export TENSORBOARD_DIR=${TENSORBOARD_DIR:-$RUN_DIR/rl/tensorboard} WANDB_DIR=${WANDB_DIR:-$RUN_DIR/rl}
python -m verl.trainer.main_ppo \
  --config-path="$RECIPE_DIR" --config-name=rl \
  data.train_files="$RUN_DIR/synth/train/export/rl/train.parquet" \
  data.val_files="$RUN_DIR/heldout/familiar_names/synth/export/rl/train.parquet" \
  actor_rollout_ref.model.path="$RUN_DIR/sft" \
  trainer.default_local_dir="$RUN_DIR/rl/ckpt" \
  trainer.n_gpus_per_node="$NGPUS" trainer.nnodes=1 \
  "$@" 2>&1 | tee "$RUN_DIR/rl/log.txt"

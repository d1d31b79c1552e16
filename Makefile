# The two commands of the README. Each sets up its own environment (idempotently) first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup quickstart test gpu-smoke

setup:
	@bash scripts/setup_env.sh

## The main job (grows into the CPU quickstart recipe).
quickstart: setup
	$(VENV)/bin/datamind-ext doctor

## The whole test suite (unit, integration and slow end-to-end tests).
test: setup
	$(PY) -m pytest -ra --durations=15

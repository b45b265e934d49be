# Every target installs what it needs into .venv (pinned by requirements/*.txt and
# requirements/constraints.txt) from a fresh clone; no step downloads anything but packages.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
CHECKOV_VENV ?= .venv-checkov

# Embedded defaults: the offline model pack beside the checkout, when it is there. Anything set in
# the environment wins; with neither, insightface downloads buffalo_l into ~/.insightface as usual.
SHARED_MODEL_ROOT := $(abspath ../shared/models/insightface)
ifneq ($(wildcard $(SHARED_MODEL_ROOT)/models/offline_sc),)
MODEL_ROOT ?= $(SHARED_MODEL_ROOT)
MODEL_PACK ?= offline_sc
export MODEL_ROOT MODEL_PACK
endif

HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
LAMBDA_ARCH ?= x86_64
BENCH_ARGS ?=

.PHONY: help venv run serve test lint typecheck format checkov-venv clean lock package bench bench-quick

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements/*.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -c requirements/constraints.txt -r requirements/dev.txt
	$(PIP) install --no-deps -r requirements/insightface.txt
	touch $@

venv: $(VENV)/.installed ## Create .venv with everything pinned

$(CHECKOV_VENV)/.installed: requirements/checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip --disable-pip-version-check install -r requirements/checkov.txt
	touch $@

checkov-venv: $(CHECKOV_VENV)/.installed ## Create .venv-checkov (checkov clashes with python-hcl2)

run: STATE_DIR ?= .local-stack
run: MOTO_PORT ?= 5000
run: LAMBDA_PORT ?= 5001
run: venv ## terraform apply of terraform/ into moto, then the Lambdas, Batch jobs, the app on $(PORT); Ctrl-C stops
	$(PY) -m local_stack --state-dir $(STATE_DIR) --moto-port $(MOTO_PORT) --lambda-port $(LAMBDA_PORT) \
		--app-port $(PORT)

serve: venv ## Start the face-embedding API on $(HOST):$(PORT) (CPU, local storage, embedded index)
	$(PY) -m gpu_app serve --host $(HOST) --port $(PORT)

lint: venv ## ruff (lint + format check)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv ## mypy over all first-party code and tests (config: pyproject.toml [tool.mypy])
	$(VENV)/bin/mypy

format: venv ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: venv checkov-venv lint typecheck ## The whole test suite (lint, type check, unit, integration, end-to-end)
	$(PY) -m pytest $(PYTEST_ARGS)

clean: ## Remove virtual environments, build output and local state
	rm -rf $(VENV) $(CHECKOV_VENV) build data .local-stack .pytest_cache .ruff_cache .mypy_cache

package: venv ## Build build/lambda/<function>.zip for Lambda python3.12 (LAMBDA_ARCH=x86_64|arm64)
	$(PY) scripts/package_lambdas.py --arch $(LAMBDA_ARCH) --out build/lambda

bench: venv ## Benchmarks as same-run ratios: table + BENCHMARKS.md (BENCH_ARGS=--quick: under 2 min)
	$(PY) -m bench $(BENCH_ARGS)

bench-quick: venv ## Quick benchmarks (under 2 min); report in build/bench/BENCHMARKS-quick.md
	$(PY) -m bench --quick $(BENCH_ARGS)

lock: ## Re-resolve requirements/constraints.txt from requirements/dev.txt in a scratch venv
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip --disable-pip-version-check install -r requirements/dev.txt
	{ echo "# Full pin set for every install (pip -c). Regenerate with: make lock"; \
	  build/lock-venv/bin/pip freeze --exclude-editable; } > requirements/constraints.txt
	rm -rf build/lock-venv

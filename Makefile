# pooltender: one entry point for people and CI. `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The second leg of the version matrix: the oldest SQLAlchemy and FastAPI pooltender supports.
OLDEST_VENV ?= .venv-oldest
OLDEST_BIN  := $(OLDEST_VENV)/bin

.DEFAULT_GOAL := help

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[cli]'
	@touch $@

# The newest releases of everything (-U): the first leg of the version matrix.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -U --upgrade-strategy eager -e '.[dev]'
	@touch $@ $(VENV)/.installed-base

$(OLDEST_VENV)/.installed: pyproject.toml constraints/oldest.txt
	$(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_BIN)/python -m pip install -q --upgrade pip
	$(OLDEST_BIN)/python -m pip install -q -e '.[dev]' -c constraints/oldest.txt
	@touch $@

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: demo
demo: $(VENV)/.installed-base ## run the demo service on embedded SQLite (http://127.0.0.1:8000)
	$(BIN)/pooltender demo

.PHONY: lint
lint: $(VENV)/.installed-dev ## ruff (lint + format check) and mypy (strict on the package)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

.PHONY: docs
docs: $(VENV)/.installed-base ## regenerate the README's settings table from the settings' declarations
	$(BIN)/python scripts/settings-table.py README.md

.PHONY: services
services: ## make sure what the integration tests need is installed and up
	bash scripts/services.sh
	bash scripts/install-chromium.sh
	bash scripts/install-nginx.sh
	bash scripts/pgbouncer.sh
	bash scripts/prometheus.sh

.PHONY: test
test: $(VENV)/.installed-dev services lint ## the whole suite, on the newest and on the oldest supported SQLAlchemy/FastAPI
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory test-oldest

.PHONY: test-oldest
test-oldest: $(OLDEST_VENV)/.installed services ## the suite on the oldest supported SQLAlchemy and FastAPI (constraints/oldest.txt)
	$(OLDEST_BIN)/python -m pytest

.PHONY: test-unit
test-unit: $(VENV)/.installed-dev ## unit tests only (no server needed)
	$(BIN)/python -m pytest -m "not integration"

# Chatflow developer commands. The README documents `make dev` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install dev test lint typecheck unit migrate synth bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml layers/chatflow/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## Run the whole backend locally (local gateway + Postgres + Redis), zero config.
dev: install
	$(PY) -m local_stack

## The full test suite: lint, types, unit + integration + e2e + infra tests.
test: install
	scripts/ensure-services.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

migrate: install
	$(PY) -m chatflow.adapters.postgres.migrate

bench: install
	scripts/ensure-services.sh
	$(PY) bench/cold_start.py

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .mypy_cache .ruff_cache

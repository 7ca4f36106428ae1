# Chatflow developer commands. The README documents `make dev` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install dev test e2e lint typecheck imports unit migrate synth deploy destroy bootstrap admin localstack test-localstack bench bench-cold clean invoke event-schemas

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml layers/chatflow/pyproject.toml clients/python/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## Run the whole backend locally (local gateway + Postgres + Redis), zero config.
dev: install
	$(PY) -m local_stack

## The full test suite: lint, types, the import rules, workflow security, unit + integration + e2e + infra tests,
## then the LocalStack community profile when Docker or a Python >= 3.13 is there (else one line says why not).
test: install
	scripts/ensure-services.sh
	scripts/ensure-browser.sh
	test -d node_modules/ws || npm ci --no-audit --no-fund  # the JavaScript client's tests (Node 20 has no WebSocket)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/zizmor --offline --min-severity medium --no-progress .github/workflows
	$(PY) -m pytest
	scripts/localstack-test.sh --if-available

## The testers' acceptance suite (docs/acceptance.md): the local stack by default (started by the
## suite), or a deployed stage: make e2e TARGET_HTTP_URL=https://... TARGET_WS_URL=wss://...
## [TARGET_ADMIN_TOKEN=...]; SMOKE=1 runs only the read-only subset (safe on prod). JUnit XML in
## reports/acceptance.xml (JUNIT=path to change), a summary table at the end.
e2e: install
	@if [ -z "$$TARGET_HTTP_URL$$CHATFLOW_HTTP_URL" ]; then scripts/ensure-services.sh; fi
	mkdir -p $(dir $(or $(JUNIT),reports/acceptance.xml))
	$(PY) -m pytest -p no:cacheprovider tests/acceptance $(if $(SMOKE),-m smoke) \
		--junitxml=$(or $(JUNIT),reports/acceptance.xml) -o junit_family=xunit2 $(ARGS)

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	$(VENV)/bin/zizmor --offline --min-severity medium --no-progress .github/workflows

typecheck: install
	$(VENV)/bin/mypy

## The layer rules and "no import cycles" ([tool.importlinter] in pyproject.toml; docs/architecture.md)
imports: install
	$(VENV)/bin/lint-imports

migrate: install
	$(PY) -m chatflow_dev.migrate

## Synthesize the CDK app offline (no Docker, no AWS credentials): make synth ENV=prod
synth: install
	test -d node_modules/aws-cdk || npm ci --no-audit --no-fund
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 npx cdk synth --quiet --no-notices -c env=$(or $(ENV),dev)

## First deploy or update of an environment in AWS: checks prerequisites, deploys, checks the
## migrations, prints CHATFLOW_WS_URL / CHATFLOW_HTTP_URL (docs/infrastructure.md "Deploy and destroy").
## make deploy ENV=dev [ARGS="--require-approval never -c chatflow:alarmPageSubscriptions=ops@example.com"]
deploy: install
	$(PY) -m infra.deploy deploy --env $(or $(ENV),dev) $(ARGS)

## Remove an environment; prints what stays and why first, asks to confirm (ARGS=--yes in CI,
## ARGS=--plan-only to see the plan only). Prod keeps its data. make destroy ENV=dev
destroy: install
	@test -n "$(ENV)" || { echo "usage: make destroy ENV=dev|staging|prod [ARGS=--plan-only|--yes]"; exit 2; }
	$(PY) -m infra.deploy destroy --env $(ENV) $(ARGS)

## Once per account and region: make bootstrap ENV=prod [ARGS="--trust <pipeline account> --execution-policy <arn>"]
bootstrap: install
	$(PY) -m infra.deploy bootstrap --env $(or $(ENV),dev) $(ARGS)

## Admin CLI in a deployed stage: make admin ENV=dev ARGS="promote alice" (also demote, show, delete)
admin: install
	@test -n "$(ENV)" -a -n "$(ARGS)" || { echo 'usage: make admin ENV=<env> ARGS="promote <handle>"'; exit 2; }
	$(PY) -m infra.deploy admin --env $(ENV) -- $(ARGS)

## Deploy the community-edition profile to a running LocalStack, then smoke-test it (docs/localstack.md)
localstack: install
	scripts/localstack-deploy.sh

## Start a private LocalStack (Docker, or host mode on Python >= 3.13), deploy, smoke-test, stop it
test-localstack: install
	scripts/localstack-test.sh

bench: install
	scripts/ensure-services.sh
	$(PY) bench/cold_start.py

## Cold start of every function vs the baseline (docs/performance.md): make bench-cold REPEAT=5
## (INSTRUCTIONS=1 adds callgrind instruction counts: deterministic, ~5 min more; needs valgrind)
bench-cold: install
	scripts/ensure-services.sh
	$(PY) bench/cold_start.py --repeat $(or $(REPEAT),5) $(if $(INSTRUCTIONS),--instructions)

## Invoke one function locally with a sample event: make invoke FN=notifications EVENT=message_created
invoke: install
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make invoke FN=<function> EVENT=<sample in events/samples/FN/>"; exit 2; }
	$(PY) -m chatflow_dev.events invoke $(FN) $(EVENT)

## Re-export the event JSON Schemas (events/schemas) after changing chatflow/events/schemas.py.
event-schemas: install
	$(PY) -m chatflow_dev.events export-schemas

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .mypy_cache .ruff_cache

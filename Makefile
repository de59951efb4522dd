# The front door: every check a contributor runs is a target here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TENANTS_DIR ?= .queryall/tenants
TENANTS ?= 40
PORT ?= 3000

.PHONY: install run seed test lint unit integration e2e template bench bench-item-capacity bench-fanout bench-coldstart bench-isolation-cost bench-gateway bench-local-start openapi clean bench-load fuzz fault-injection bench-latency

$(STAMP): requirements.txt requirements-dev.txt functions/requirements.txt infra/layers/duckdb/requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## make run: set everything up, seed sample tenants if there are none, serve the local stack.
run: install
	@test -n "$$(ls $(TENANTS_DIR)/*.duckdb 2>/dev/null)" || $(BIN)/queryall local seed --tenants-dir $(TENANTS_DIR) --tenants $(TENANTS)
	$(BIN)/queryall local serve --tenants-dir $(TENANTS_DIR) --port $(PORT)

seed: install
	$(BIN)/queryall local seed --tenants-dir $(TENANTS_DIR) --tenants $(TENANTS)

## make test: set up and run every check.
test: install lint
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .

unit: install
	$(BIN)/python -m pytest -q tests/unit

integration: install
	$(BIN)/python -m pytest -q tests/integration

e2e: install
	$(BIN)/python -m pytest -q tests/e2e

## make fuzz: schemathesis against the served /openapi.json with many examples per operation (make test runs a few).
fuzz: install
	QUERYALL_FUZZ_EXAMPLES=$${QUERYALL_FUZZ_EXAMPLES:-200} $(BIN)/python -m pytest -q tests/e2e/test_schemathesis.py

## make fault-injection: the fault-injection e2e test over 1,000 tenants (make test runs it over 200).
fault-injection: install
	QUERYALL_FAULT_TENANTS=$${QUERYALL_FAULT_TENANTS:-1000} $(BIN)/python -m pytest -q tests/e2e/test_faults.py

template: install
	$(BIN)/python -m pytest -q tests/template

bench: bench-item-capacity bench-fanout bench-coldstart bench-isolation-cost bench-gateway bench-local-start bench-latency

## make bench-fanout: the local pipeline over HTTP vs one process querying every tenant (177 and 1,000).
bench-fanout: install
	$(BIN)/python bench/fanout.py

## make bench-coldstart: each function's handler import time (and first invoke) vs boto3 + Powertools.
bench-coldstart: install
	$(BIN)/python bench/coldstart.py

## make bench-gateway: the local gateway's own cost per request (a loop of GET polls, function answers at once).
bench-gateway: install
	$(BIN)/python bench/gateway.py

## make bench-local-start: `queryall local serve` to ready and one `local invoke PollFunction`, vs targets.
bench-local-start: install
	$(BIN)/python bench/local_start.py

## make bench-load: 50 submitters at once and 500 pollers against the local stack; exits 1 when a target is missed.
bench-load: install
	$(BIN)/python bench/load.py

## make bench-latency: a small job (one tenant, SELECT 1), submit -> wait returns, p50/p95 and a breakdown by step.
bench-latency: install
	$(BIN)/python bench/latency.py

## make bench-isolation-cost: per-tenant cost of the isolation sandbox vs the ATTACH/DETACH floor.
bench-isolation-cost: install
	$(BIN)/python bench/isolation_cost.py

## make bench-item-capacity: rows the job item keeps under 400 KB, plain JSON vs compressed.
bench-item-capacity: install
	$(BIN)/python bench/item_capacity.py

## make openapi: regenerate docs/openapi.json from the route models (a test fails when it is stale).
openapi: install
	$(BIN)/python -m queryall.handlers.openapi docs/openapi.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

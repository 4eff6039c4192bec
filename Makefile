# txstream — `make help` lists every target.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export PYSPARK_PYTHON := $(abspath $(BIN))/python
# Installed again only when the lock changes.
STAMP := $(VENV)/.installed
# The jars jvm/pom.xml declares (Apache Kafka, Spark's Kafka connector), where txstream looks for them.
DATA_DIR := $(or $(TXSTREAM_DATA_DIR),.txstream)
JVM_DIR := $(or $(TXSTREAM_JVM_DIR),$(DATA_DIR)/jvm)
JVM_STAMP := $(JVM_DIR)/.resolved
JVM_POMS := $(wildcard jvm/pom.xml jvm/*/pom.xml)

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

# Every Python dependency comes from requirements.lock, pinned and checked against its hashes
# (`make lock` re-resolves it from pyproject.toml); txstream itself is installed on top, editable.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# Maven resolves the jars once; a later install finds them in ~/.m2 and works offline.
$(JVM_STAMP): $(JVM_POMS)
	@./scripts/install-system-deps java maven
	@mvn --batch-mode --quiet --offline -f jvm/pom.xml package -Djvm.lib.dir=$(abspath $(JVM_DIR)) 2>/dev/null \
	  || mvn --batch-mode --quiet -f jvm/pom.xml package -Djvm.lib.dir=$(abspath $(JVM_DIR))
	@touch $(JVM_STAMP)

.PHONY: install
install: $(STAMP) $(JVM_STAMP) ## Create .venv, install txstream with its test tools, resolve the JVM jars with Maven

.PHONY: lock
lock: ## Re-resolve requirements.lock (pins and hashes) from pyproject.toml, after changing a dependency
	@test -x $(VENV)-lock/bin/pip-compile || { $(PYTHON) -m venv $(VENV)-lock && $(VENV)-lock/bin/pip install --quiet pip-tools; }
	$(VENV)-lock/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links \
	  --extra test --output-file requirements.lock pyproject.toml

.PHONY: system-deps
system-deps: ## Install what pip cannot (Java 17, Maven, Chromium for the UI test) with apt, when run as root
	@./scripts/install-system-deps

.PHONY: run
run: install ## Install (Java and Maven too, as root), start the embedded stack, stream synthetic charges end to end, print a summary, serve the UI
	$(BIN)/txstream demo

.PHONY: test
test: install system-deps ## Install and run the whole test suite (what CI runs)
	$(BIN)/python -m pytest

.PHONY: test-fast
test-fast: install ## Unit and quick integration tests only (no Spark, browser or fault injection)
	$(BIN)/python -m pytest -m "not slow"

.PHONY: lint
lint: $(STAMP) ## Lint, format check and types: ruff (lint, format, import order), mypy, sqlfluff on the dbt models
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd dbt_project && $(abspath $(BIN))/sqlfluff lint models tests

.PHONY: format
format: $(STAMP) ## Format the Python code and fix what ruff and sqlfluff can fix by themselves
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	cd dbt_project && $(abspath $(BIN))/sqlfluff fix models tests

.PHONY: up
up: install ## Start the embedded PostgreSQL and Apache Kafka
	$(BIN)/txstream up

.PHONY: down
down: ## Stop the embedded services
	$(BIN)/txstream down

.PHONY: status
status: ## Show whether PostgreSQL and Kafka answer
	$(BIN)/txstream status

.PHONY: dev
dev: install ## Start the embedded stack, serve Dagster (UI, sensors, automation) on http://127.0.0.1:3000; Ctrl-C stops it all
	$(BIN)/txstream dev

.PHONY: bench
bench: install ## Run every benchmark and rewrite bench/RESULTS.md
	$(BIN)/python bench/run_all.py

.PHONY: validate
validate: install ## Check the Dagster code location loads
	$(BIN)/dagster definitions validate -w workspace.yaml

.PHONY: clean
clean: down ## Stop services and remove local data (.txstream/) and build output
	rm -rf .txstream dbt_project/target dbt_project/logs

# One-command entry points. `make run` and `make test` bootstrap whatever is missing.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JARS_STAMP := .cache/jars/.fetched
LANDING ?= demo/landing
LAKE ?= demo/lake
AS_OF ?= 2022-05-15T01:00:00
SF ?= 0.002

.PHONY: help setup run test test-fast test-airflow lint format java clean bench cluster-test airflow engine engine-stop test-engine-stop

help:  ## list the commands
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

java:
	@command -v java >/dev/null 2>&1 || { echo "Java 17+ is required (no 'java' on PATH): install OpenJDK 17, e.g. apt-get install openjdk-17-jre-headless"; exit 1; }
	@v=$$(java -version 2>&1 | awk -F'"' '/version/{print $$2}' | cut -d. -f1); \
	  [ "$$v" -ge 17 ] 2>/dev/null || { echo "Java 17+ is required, found Java $$v: install OpenJDK 17"; exit 1; }

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q uv==0.13.9
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

$(JARS_STAMP): $(STAMP)
	$(BIN)/python -m jobs.spark --fetch-jars

setup: java $(STAMP) $(JARS_STAMP)  ## create .venv, install the project, fetch the Delta jars once

run: setup  ## generate a demo landing set, run a nightly screening, print the summary
	$(BIN)/screening generate --landing $(LANDING) --sf $(SF) --start 2022-05-01 --days 14 --seed 7
	$(BIN)/screening run --landing $(LANDING) --lake $(LAKE) --as-of $(AS_OF) --mode nightly

engine: setup  ## start the warm engine (one Spark JVM); then `export SCREENING_SPARK_REMOTE=sc://127.0.0.1:15002`
	$(BIN)/screening engine start

engine-stop:  ## stop the engine that `make engine` started
	$(BIN)/screening engine stop

test: setup  ## the whole suite, as CI runs it: unit and scenarios on a test engine, then end-to-end in-process (about 45 min here)
	$(BIN)/python -m pytest -q --engine=once tests/unit tests/scenarios
	$(BIN)/python -m pytest -q tests/e2e

test-fast: setup  ## the inner loop: unit and scenario tests on the test engine, left up for the next run (about 5 min cold, 4 warm)
	$(BIN)/python -m pytest -q -m "not slow" --engine=warm tests/unit tests/scenarios
	@echo "the test engine stays up for the next run (.engine-test/); make test-engine-stop stops it"

test-engine-stop:  ## stop the test engine that make test-fast leaves up
	SCREENING_ENGINE_HOME=.engine-test $(BIN)/screening engine stop

test-airflow: setup  ## only the Airflow end-to-end test (also in make test): a nightly and two hourly DAG runs (5 min)
	$(BIN)/python -m pytest -q -m airflow_e2e tests/e2e/test_airflow_e2e.py

lint: setup  ## one style and the module layers: ruff format --check, ruff check, lint-imports (CI runs it)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

format: setup  ## apply the style: ruff format, then the fixable ruff checks (import order, ...)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

BENCH_SF ?= 0.01
REPEAT ?= 3

bench: setup  ## time initial load, nightly, hourly (night and day hour), companion (BENCH_SF=0.01 REPEAT=3); JSON in bench/results
	$(BIN)/screening bench --sf $(BENCH_SF) --repeat $(REPEAT)

cluster-test: setup  ## run nightly + hourly on a local standalone cluster, compare gold with local mode
	$(BIN)/python scripts/cluster_test.py

airflow: setup  ## Airflow locally (UI, scheduler) with the screening DAGs on demo/landing, demo/lake; Ctrl-C or SIGTERM stops all of it
	scripts/airflow.sh standalone

clean:  ## remove the demo lake and landing
	rm -rf demo

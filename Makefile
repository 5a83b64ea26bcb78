# interest-tracker: `make` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp
KAFKA := docker/kafka/kafka.sh
DATA_DIR ?= ../shared/data
DATA ?= taobao

.DEFAULT_GOAL := help
.PHONY: help setup browser test test-unit test-kafka lint format kafka-up kafka-down kafka-logs \
        stream-demo worker bench bench-train failover soak evaluate wheel-check clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml models/_masses.c models/_history.c stream/_wire.c docker/kafka/pom.xml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,content]'
	$(KAFKA) resolve
	@touch $(STAMP)

setup: $(STAMP) ## create .venv, install the package with its dev and content extras, resolve the broker jars

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser: ## install Debian's chromium and chromium-driver (the dashboard's browser test)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { $(SUDO) apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

test: $(STAMP) browser ## run the whole suite (unit, agent, kafka tiers; starts the local broker if needed)
	$(PY) -m pytest -q

test-unit: $(STAMP) ## run the unit and agent tiers only
	$(PY) -m pytest -q -m "unit or agent"

test-kafka: $(STAMP) browser ## run the kafka tier only
	$(PY) -m pytest -q -m kafka

lint: $(STAMP) ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## ruff fix and format
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

kafka-up: ## start the local single-node KRaft broker (last line: KAFKA_BOOTSTRAP_SERVERS=host:port)
	@$(KAFKA) up

kafka-down: ## stop the local broker cleanly
	@$(KAFKA) down

kafka-logs: ## follow the local broker's log
	@$(KAFKA) logs

worker: $(STAMP) ## run a worker against the configured (or local) broker
	$(VENV)/bin/interest-tracker worker

stream-demo: $(STAMP) ## the pipeline live in the terminal (DATA=taobao|movielens; PLAIN=1 for line output)
	@$(PY) -m stream.dev.demo --dataset $(DATA) --data-dir $(DATA_DIR) $(if $(PLAIN),--plain)

bench: $(STAMP) ## throughput, latency, memory and scorer benchmarks (prints a table, writes JSON)
	$(PY) -m stream.dev.bench --out bench-results/bench.json

failover: $(STAMP) ## stall after kill -9 / SIGTERM restart / one of two workers killed, changelog replayed
	$(PY) -m stream.dev.failover --out bench-results/failover.json

SOAK_S ?= 1200
soak: $(STAMP) ## one worker for SOAK_S s (1200) at half its maximum rate: RSS growth, max lag, DLQ
	SOAK_S=$(SOAK_S) $(PY) -m stream.dev.soak

bench-train: $(STAMP) ## CPU training tokens/s of the item recipe on an ML-1M-shaped synthetic log
	$(PY) -m models.bench.train --json bench-results/bench-train.json

evaluate: $(STAMP) ## evaluation tables on both shared datasets, then their NLL ceilings (TAOBAO_CK=, ML_CK=: add transformer, fused)
	$(VENV)/bin/interest-tracker evaluate --data $(DATA_DIR)/taobao-head/UserBehavior.csv --format taobao \
	  $(if $(TAOBAO_CK),--checkpoint $(TAOBAO_CK))
	$(VENV)/bin/interest-tracker evaluate --data $(DATA_DIR)/ml-latest-small/ratings.csv --format movielens \
	  --items $(DATA_DIR)/ml-latest-small/movies.csv $(if $(ML_CK),--checkpoint $(ML_CK))
	$(PY) -m models.evaluation.ceiling --data $(DATA_DIR)/taobao-head/UserBehavior.csv --format taobao
	$(PY) -m models.evaluation.ceiling --data $(DATA_DIR)/ml-latest-small/ratings.csv --format movielens \
	  --items $(DATA_DIR)/ml-latest-small/movies.csv

wheel-check: $(STAMP) ## build the wheel; smoke-test it in a fresh venv (CLI, worker, assets, API)
	.ci/wheel-check

clean: ## stop the broker and remove .venv, broker data and caches
	-$(KAFKA) clean
	rm -rf $(VENV) docker/.kafka-lib .pytest_cache .ruff_cache

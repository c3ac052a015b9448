# streamscore: `make demo` runs the whole job, `make test` runs every test (what CI runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
QUIX_STAMP := bench/.venv-quix/.installed-stamp
# Docker Compose v2 (`docker compose`) when the plugin is installed, else docker-compose 1.29.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
# apt-get needs root; other users go through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help
.PHONY: help install demo test test-deps bench chaos lint typecheck train worker publish results broker-start broker-stop run-stack stop-stack

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Install streamscore and its dev tools into .venv (pinned by constraints.txt)

demo: $(STAMP) ## Train, stream and score all 5,574 SMS messages on the embedded broker
	$(BIN)/streamscore demo

test: $(STAMP) ## Run the whole test suite against a real broker it starts itself
	@$(BIN)/python -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "error: pytest collected no tests" >&2; fi; \
	exit $$status

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# Quix Streams pins versions that conflict with streamscore's, so it gets a venv of its own.
$(QUIX_STAMP): $(STAMP) bench/requirements-quix.txt
	$(BIN)/python -m venv bench/.venv-quix
	bench/.venv-quix/bin/python -m pip install --quiet -r bench/requirements-quix.txt
	touch $(QUIX_STAMP)

bench: $(BENCH_STAMP) $(QUIX_STAMP) ## Measure the worker against its ceilings and peers (under 10 minutes)
	$(BIN)/python -m bench

chaos: $(STAMP) ## Kill, rebalance and starve workers; write reports/chaos.json (under 10 minutes)
	$(BIN)/python -m chaos

lint: $(STAMP) ## Check formatting and lint rules
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP) ## Type-check the packages
	$(BIN)/mypy streamscore stream producer trainer chaos bench

train: $(STAMP) ## Train the spam model and register it (alias moves if it passes the gate)
	$(BIN)/streamscore train

worker: $(STAMP) ## Run a worker against kafka.bootstrap_servers
	$(BIN)/streamscore worker

publish: $(STAMP) ## Publish the SMS messages to the input topic
	$(BIN)/streamscore publish data/sms_spam_collection.tsv --columns label,message --fields message

results: $(STAMP) ## Print the results on the output topic
	$(BIN)/streamscore results

broker-start: $(STAMP) ## Start the embedded broker in the background
	$(BIN)/streamscore broker start

broker-stop: $(STAMP) ## Stop the embedded broker
	$(BIN)/streamscore broker stop

run-stack: ## Start Kafka, MLflow, the trainer, two workers, demo load, Prometheus and Grafana (Docker)
	$(COMPOSE) up --build --detach
	@echo "Grafana     http://127.0.0.1:3000  (dashboard streamscore; admin password: admin unless GRAFANA_ADMIN_PASSWORD)"
	@echo "Prometheus  http://127.0.0.1:9090/targets"
	@echo "MLflow      http://127.0.0.1:5000"
	@echo "Kafka       127.0.0.1:9094  (STREAMSCORE_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9094 streamscore results)"
	@replicas=$$($(COMPOSE) ps -q worker | wc -l); \
	for index in $$(seq 1 $$replicas); do \
		address=$$($(COMPOSE) port --index $$index worker 9400); \
		echo "worker $$index    http://$$address/metrics  /healthz  /readyz"; \
	done

stop-stack: ## Stop and remove the stack's containers; the volumes (MLflow registry, Prometheus data) stay
	$(COMPOSE) down

# The tests run their own prometheus and validate docker-compose.yml with docker-compose. The
# policy-rc.d file stops the package scripts from starting Debian's prometheus service while
# apt-get installs it, and is removed afterwards unless it was there before.
test-deps: ## Install prometheus and docker-compose with apt-get (Debian) unless both are present
	@missing=""; \
	{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	if [ -z "$$missing" ]; then echo "test-deps: prometheus and docker-compose are installed"; exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "error: install $$missing with your package manager; apt-get was not found" >&2; exit 1; \
	fi; \
	policy=/usr/sbin/policy-rc.d; created_policy=no; \
	if [ ! -e $$policy ]; then \
		printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee $$policy >/dev/null && $(SUDO) chmod 755 $$policy; \
		created_policy=yes; \
	fi; \
	$(SUDO) apt-get -o DPkg::Lock::Timeout=300 update -qq \
		&& $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
			install -y -qq --no-install-recommends $$missing; \
	status=$$?; \
	if [ $$created_policy = yes ]; then $(SUDO) rm -f $$policy; fi; \
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then \
		$(SUDO) systemctl disable --now prometheus.service >/dev/null 2>&1 || true; \
	fi; \
	exit $$status

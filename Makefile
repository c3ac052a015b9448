# streamscore: `make demo` runs the whole job, `make test` runs every test (what CI runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp

.DEFAULT_GOAL := help
.PHONY: help install demo test bench lint typecheck train worker publish results broker-start broker-stop run-stack stop-stack

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

bench: $(BENCH_STAMP) ## Measure the worker against its ceilings and peers (under 10 minutes)
	$(BIN)/python -m bench

lint: $(STAMP) ## Check formatting and lint rules
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP) ## Type-check the packages
	$(BIN)/mypy streamscore stream producer trainer

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

run-stack: ## Start Kafka, a trainer and two workers with Docker Compose (needs a Docker engine)
	docker compose up --build --detach --scale worker=2

stop-stack: ## Stop the Docker Compose stack
	docker compose down

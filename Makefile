# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup coverage system-deps demo test unit lint typecheck check bench bench-kernel bench-serde broker-jars profile clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,train,bench,otel]'
	@touch $(STAMP)

broker-jars: $(STAMP)
	$(BIN)/python -m consumer.local_kafka fetch

# What the README's "Running the service" commands need: the venv, the broker's jars and a demo
# model with its feature files in demo-data/ (deploy/local.toml points there).
setup: $(STAMP) broker-jars demo-data/models/demo-lr/manifest.json

demo-data/models/demo-lr/manifest.json: $(STAMP)
	$(BIN)/python -m consumer.demo_data demo-data

demo: $(STAMP) broker-jars
	$(BIN)/stream-scorer demo

system-deps:
	bash scripts/system-deps.sh

# The whole suite once, under coverage: the floor (pyproject.toml) is checked from this run.
test: $(STAMP) broker-jars system-deps
	@mkdir -p .cache
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest
	@$(BIN)/coverage report > .cache/coverage.txt || { cat .cache/coverage.txt; exit 1; }
	@echo "coverage floor met: $$(tail -n 1 .cache/coverage.txt)"

# The fast tests alone: no broker, no Feast, no system packages.
unit: $(STAMP)
	$(BIN)/pytest -q -m "not kafka and not feast and not faults and not system"

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The coverage table of the last `make test` run (which already enforced the floor).
coverage: $(STAMP)
	$(BIN)/coverage report

check: lint typecheck test

bench: bench-kernel bench-serde

bench-kernel: $(STAMP)
	$(BIN)/python -m bench.kernel

bench-serde: $(STAMP)
	$(BIN)/python -m bench.serde

# A flame graph of the scorer draining a backlog on a local broker (py-spy, from the dev extra):
# prints the SVG's path under .cache/profiles/. PROFILE_ARGS="--workload heavy --native" etc.
profile: $(STAMP) broker-jars
	$(BIN)/python -m bench.profile $(PROFILE_ARGS)

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache

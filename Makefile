# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup coverage system-deps demo test lint typecheck check bench bench-kernel bench-serde broker-jars clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,train,bench]'
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

test: $(STAMP) broker-jars system-deps
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

coverage: $(STAMP)
	$(BIN)/coverage run -m pytest -q tests/scoring tests/consumer/test_offsets.py
	$(BIN)/coverage report

check: lint typecheck coverage test

bench: bench-kernel bench-serde

bench-kernel: $(STAMP)
	$(BIN)/python -m bench.kernel

bench-serde: $(STAMP)
	$(BIN)/python -m bench.serde

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache

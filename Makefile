# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: coverage system-deps demo test lint typecheck check bench bench-kernel bench-serde broker-jars profile clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,train,bench]'
	@touch $(STAMP)

broker-jars: $(STAMP)
	$(BIN)/python -m consumer.local_kafka fetch

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

# A flame graph of the scorer draining a backlog on a local broker (py-spy, from the dev extra):
# prints the SVG's path under .cache/profiles/. PROFILE_ARGS="--workload heavy --native" etc.
profile: $(STAMP) broker-jars
	$(BIN)/python -m bench.profile $(PROFILE_ARGS)

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache

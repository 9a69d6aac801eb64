# Two commands on a fresh machine: `make run` and `make test`. Each creates .venv when missing.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

# torch is pinned first: a CPU wheel of 2.13.0 lies on these machines, while a bare
# `torch` requirement would fetch a multi-GB CUDA build. The package itself asks torch>=2.3.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/emvi run seeds

# The suite's fits run one torch thread each (tests/conftest.py); pytest-xdist runs one
# worker per core, a test file per worker so module-scoped fits are computed once.
TEST_WORKERS ?= auto
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(PIP) -e '.[dev,bench]'
	$(BIN)/python -m emvi.experiments.benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis *.egg-info

.PHONY: run test lint bench clean

# Every target works from a fresh clone: it creates or refreshes .venv itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	@scripts/ensure-postgres-binaries.sh
	$(BIN)/drkit demo

test: $(STAMP)
	@scripts/ensure-postgres.sh
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	@scripts/ensure-postgres.sh
	$(BIN)/python tests/bench/run.py

clean:
	rm -rf $(VENV) .drkit .pytest_cache .mypy_cache .ruff_cache

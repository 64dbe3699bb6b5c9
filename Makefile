# The few verbs people look for. `make run` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint format bench up up-gpu clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "lookalike needs Python 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)

# Serve on http://127.0.0.1:8000 with the demo gallery loaded on first start.
run: $(STAMP)
	$(BIN)/lookalike serve --demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check shared services migrations tests
	$(BIN)/ruff format --check shared services migrations tests
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format shared services migrations tests
	$(BIN)/ruff check --fix shared services migrations tests

up:
	docker compose up --build

up-gpu:
	docker compose -f docker-compose.yml -f docker-compose.gpu.yml up --build

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache

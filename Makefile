# The few verbs people look for. `make run` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint format audit bench up up-gpu compose-check clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "lookalike needs Python 3.11")'
	$(PYTHON) -m venv $(VENV)
	# venv seeds setuptools 65.5, which has known vulnerabilities (make audit)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools uv
	# uv installs what pip would (same versions, bytecode too) in half the time (docs/development.md): every fresh
	# clone, so every CI run, pays it. The venv keeps pip for pip-audit.
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]'
	# Bytecode for the package's own modules, as pip writes it for every package it installs but an editable one:
	# where PYTHONDONTWRITEBYTECODE is set, every gateway, worker and CLI start would compile them anew (0.1 s).
	$(BIN)/python -m compileall -q shared services migrations
	@touch $@

install: $(STAMP)

# Serve on http://127.0.0.1:8000 with the demo gallery loaded on first start.
run: $(STAMP)
	$(BIN)/lookalike serve --demo

# Two workers fill the time tests spend waiting on their servers (tests/workers.py, docs/development.md).
test: $(STAMP)
	$(BIN)/python -m pytest -n 2

lint: $(STAMP)
	$(BIN)/ruff check shared services migrations tests bench deploy
	$(BIN)/ruff format --check shared services migrations tests bench deploy
	$(BIN)/mypy

# Known vulnerabilities in everything installed in the venv, from PyPI's advisories. --strict: a package that
# could not be checked (no network, PyPI unreachable) fails the audit instead of being skipped in silence.
audit: $(STAMP)
	$(BIN)/pip-audit --strict --vulnerability-service pypi --skip-editable --progress-spinner off

format: $(STAMP)
	$(BIN)/ruff format shared services migrations tests bench deploy
	$(BIN)/ruff check --fix shared services migrations tests bench deploy

# Every figure of docs/benchmarks.md: tables on stdout, JSON under bench/results/ (about 50 minutes on 2 cores,
# 20 of them building 1M-face HNSW graphs). GPU: bench/gpu_check.py, on the machine that has one.
bench: $(STAMP)
	$(BIN)/python bench/raw_ceiling.py
	$(BIN)/python bench/service_http.py --mode embedded
	$(BIN)/python bench/service_http.py --mode distributed
	$(BIN)/python bench/ingest_throughput.py
	$(BIN)/python bench/index_search.py --service-ef 256:256,512:256,1024:256
	$(BIN)/python bench/index_floor.py --sizes 1M
	$(BIN)/python bench/decode_12mp.py

up:
	docker compose up --build

up-gpu:
	docker compose -f docker-compose.yml -f docker-compose.gpu.yml up --build

# The stack of docker-compose.yml built and run here under podman (Docker Compose's CLI against podman's API), tried
# through the gateway, torn down; then the GPU overlay's worker image. Needs root (apt-get, podman) and about 10 GB
# of disk. docs/deployment.md says what it checks and how long it takes.
compose-check: $(STAMP)
	$(BIN)/python -m deploy.compose_check

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache

# Two commands: `make serve` runs the app (embedded: SQLite + filesystem broker under var/),
# `make test` runs the whole test suite. Both create .venv and install what they need.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?=
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: serve test lint worker migrate bench browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml scripts/install-torch | $(BIN)/python
	scripts/install-torch $(BIN)/pip
	$(BIN)/pip install --quiet -e .
	$(BIN)/python scripts/fetch-plotly $(VENV)/share/syllabary
	touch $@

$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

serve: $(STAMP)
	$(BIN)/syllabary serve $(if $(PORT),--port $(PORT),)

worker: $(STAMP)
	$(BIN)/syllabary worker

migrate: $(STAMP)
	$(BIN)/syllabary migrate

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy app worker model

# Debian's Chromium for the browser tests (tests/e2e); Playwright's own download is never used.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update && apt-get install -y chromium)

test: lint browser
	$(BIN)/pytest

clean:
	rm -rf $(VENV) var

# Careloop: two commands on a fresh machine.
#   make demo   installs into .venv if needed, prepares the embedded database and serves the demo clinic
#   make test   installs test dependencies if needed and runs the whole suite on SQLite and PostgreSQL

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=

.PHONY: demo test lint test-sqlite test-postgresql install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/careloop demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test-sqlite: $(STAMP)
	env -u CARELOOP_TEST_DATABASE_URL $(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgresql: $(STAMP)
	CARELOOP_TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint test-sqlite test-postgresql

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

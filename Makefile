# Two commands a new machine needs: `make run` and `make test`.
# Each creates .venv when missing and installs only when setup.cfg changed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run test lint pytest fuzz bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel

# Stamps record that the install for a given setup.cfg is done.
$(VENV)/.installed-run: setup.cfg pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-dev: setup.cfg pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/yabot run

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check actors yabot tests bench config
	$(BIN)/mypy actors yabot

pytest: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint pytest

# The API against its own OpenAPI document with every schemathesis check, stateful links
# included, at 300 examples per operation and mode (`make test` runs 25).
FUZZ_EXAMPLES ?= 300
fuzz: $(VENV)/.installed-dev
	YABOT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -p no:cacheprovider \
		-o timeout=0 tests/api/test_schemathesis.py $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache *.egg-info

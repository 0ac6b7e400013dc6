# Two commands a new machine needs: `make run` and `make test`.
# Each creates .venv when missing and installs only when setup.cfg changed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run test test-stressed soak lint pytest fuzz bench clean

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
	$(BIN)/ruff check actors yabot tests bench config docs
	$(BIN)/mypy actors yabot tests bench docs

# Parallel workers (pytest-xdist), one test module per worker at a time (--dist loadscope), so
# a module's server fixture starts once. Each worker has its own PostgreSQL schema, Redis key
# prefixes, ports and tmp dirs (see README: Tests). PYTEST_WORKERS=0 runs in one process.
# Modules are handed out in collection order (--no-loadscope-reorder), which puts
# tests/conftest.py's LONG_MODULES first: by default xdist hands out the modules with the
# fewest tests last, and those are the longest ones.
# auto: one worker more than the CPUs (tests/conftest.py says why).
PYTEST_WORKERS ?= auto
PYTEST := $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder \
	--durations=15

pytest: $(VENV)/.installed-dev
	$(PYTEST) $(PYTEST_ARGS)

# The long property runs (`@pytest.mark.soak`), which `make test` leaves out.
soak: $(VENV)/.installed-dev
	$(PYTEST) --soak -m soak $(PYTEST_ARGS)

test: lint pytest

# The suite while STRESS_HOGS busy loops load the CPUs (two: both cores of the reference
# machine): it must pass as it does on a quiet machine, because tests wait for signals under
# generous ceilings (tests/support/waiting.py), never for a time tuned to a quiet machine.
# The hogs are this recipe's own children, killed when it ends however it ends.
STRESS_HOGS ?= 2
test-stressed: lint $(VENV)/.installed-dev
	@hogs=""; \
	trap 'kill $$hogs 2>/dev/null' EXIT INT TERM; \
	for _ in $$(seq $(STRESS_HOGS)); do \
		$(BIN)/python -c 'while True: pass' & hogs="$$hogs $$!"; \
	done; \
	echo "CPU hogs running: $$hogs"; \
	$(PYTEST) $(PYTEST_ARGS)

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

# Two entry points on a fresh machine: `make demo` (the main job) and `make test`.
# Each creates .venv and installs gradguard with its test extra when .venv is missing or
# older than pyproject.toml.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SOURCES := gradguard tests benchmarks notebooks

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

.PHONY: demo test lint bench
demo: $(STAMP)
	$(BIN)/gradguard demo

lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy

# Two workers (CI has two cores); a file's tests stay together (several share module fixtures)
# except those tests/conftest.py spreads.
test: lint
	$(BIN)/pytest -n 2 --dist loadgroup

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py

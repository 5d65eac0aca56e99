# Fresh machine: `make demo` and `make test` are all you need (they create .venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_BASE := $(VENV)/.installed-base
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck imports docs pytest bench install dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel

$(STAMP_BASE): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP_DEV): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(STAMP_BASE)

install: $(STAMP_BASE)
dev: $(STAMP_DEV)

demo: $(STAMP_BASE)
	$(BIN)/python -m cacheplug._demo

lint: $(STAMP_DEV)
	$(BIN)/ruff check cacheplug tests benchmarks
	$(BIN)/ruff format --check cacheplug tests benchmarks

typecheck: $(STAMP_DEV)
	$(BIN)/mypy --strict cacheplug

# The layers (.importlinter): nothing below imports from above, deferred imports included.
imports: $(STAMP_DEV)
	$(BIN)/lint-imports

docs: $(STAMP_DEV)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir $(VENV)/site

pytest: $(STAMP_DEV)
	$(BIN)/python -m pytest tests -q

test: lint typecheck imports docs pytest

# Benchmarks: pytest-benchmark writes $(VENV)/bench.json; check_ratios.py prints every ratio with
# its target (and $(VENV)/bench.md) and fails when one is missed. The table is printed even when
# a benchmark's own sanity check failed; the exit status then reports that failure too.
bench: $(STAMP_DEV)
	@status=0; \
	$(BIN)/python -m pytest benchmarks -q -p no:randomly --benchmark-json=$(VENV)/bench.json \
		--benchmark-columns=min,median,ops --benchmark-sort=name || status=$$?; \
	$(BIN)/python benchmarks/check_ratios.py $(VENV)/bench.json --markdown $(VENV)/bench.md || status=$$?; \
	exit $$status

clean:
	rm -rf $(VENV) site .benchmarks .import_linter_cache
